"""The evaluation core: sharded embedding independent of the number of processes, sharing, and the reference cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

import gancore
import gancore.evaluation
from gancore.builtin.datasets.base import TensorImageDataset
from gancore.builtin.metrics.distances import feature_moments
from gancore.distributed import World
from gancore.evaluation import Evaluation, FeatureExtractor


class TinyGenerator(gancore.Generator):
    """A fixed random map from z to 3×6×6 images, conditional on 4 classes (so labels are drawn too)."""

    def __init__(self) -> None:
        super().__init__(z_dim=5, num_classes=4, resolution=6, channels=3)
        g = torch.Generator().manual_seed(1)
        self.weight = torch.nn.Parameter(torch.randn(5, 108, generator=g))
        self.embed = torch.nn.Parameter(torch.randn(4, 108, generator=g))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        assert c is not None
        return torch.tanh(z @ self.weight + self.embed[c]).view(len(z), 3, 6, 6)


class Projection(FeatureExtractor):
    """A fixed random projection of the pixels, counting the images it embeds."""

    def __init__(self, seed: int = 0) -> None:
        self.matrix = torch.randn(108, 7, generator=torch.Generator().manual_seed(seed))
        self.key = f"projection-{seed}"
        self.name = "projection"
        self.embedded = 0

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        assert samples.dtype == torch.uint8  # generated images are quantised like the data
        self.embedded += len(samples)
        x = samples.float().flatten(1) / 255
        return {"features": x @ self.matrix, "mean_pixel": x.mean(1, keepdim=True)}


def images(n: int = 40, seed: int = 0) -> TensorImageDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(torch.randint(0, 256, (n, 3, 6, 6), dtype=torch.uint8, generator=g), None, 0, False)


def evaluation(data: TensorImageDataset | None = None, **kwargs: object) -> Evaluation:
    return Evaluation(TinyGenerator(), data if data is not None else images(), batch_size=8, progress=False,
                      **kwargs)  # type: ignore[arg-type]


def _worker(rank: int, rendezvous: Path, out: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    gancore.evaluation.ROWS_UP_TO = 0  # the real set's moments are streamed sums
    try:
        ev = Evaluation(TinyGenerator(), images(), world=World(rank, 2), seed=3, batch_size=8, progress=False)
        fake = ev.generated(Projection(), 33)  # 5 batches, the last of 1: rank 1 has none in the third round
        real = ev.real(Projection(), keep_rows=False)  # 40 items: 5 batches
        torch.save({"fake": fake["features"].rows, "real_mean": real["features"].mean,
                    "real_cov": real["features"].cov}, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_results_do_not_depend_on_the_number_of_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gancore.evaluation, "ROWS_UP_TO", 0)
    mp.spawn(_worker, args=(tmp_path / "rendezvous", tmp_path), nprocs=2)
    one = Evaluation(TinyGenerator(), images(), seed=3, batch_size=8, progress=False)
    fake = one.generated(Projection(), 33)["features"].rows
    real = one.real(Projection(), keep_rows=False)["features"]
    for rank in range(2):
        found = torch.load(tmp_path / f"rank{rank}.pt")
        assert found["fake"].shape == (33, 7)
        torch.testing.assert_close(found["fake"], fake, rtol=0, atol=0)
        torch.testing.assert_close(found["real_mean"], real.mean, rtol=0, atol=0)
        torch.testing.assert_close(found["real_cov"], real.cov, rtol=0, atol=0)


def test_streamed_moments_equal_the_two_pass_moments_of_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gancore.evaluation, "ROWS_UP_TO", 0)
    ev = evaluation()
    rows = ev.real(Projection())["features"].rows
    streamed = evaluation().real(Projection(), keep_rows=False)["features"]
    assert streamed.rows is None and streamed.count == 40
    mean, cov = feature_moments(rows)
    torch.testing.assert_close(streamed.mean, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(streamed.cov, cov, rtol=1e-10, atol=1e-12)


def test_real_items_and_generated_samples_are_what_they_should_be() -> None:
    data = images()
    ev = evaluation(data)
    extractor = Projection()
    real = ev.real(extractor)["features"].rows
    torch.testing.assert_close(real, (data.images.float().flatten(1) / 255) @ extractor.matrix)
    subset = ev.real(extractor, 15)["features"].rows
    assert len(subset) == 15 and len({tuple(r.tolist()) for r in subset}) == 15  # drawn without replacement
    assert ev.real(extractor, 1000)["features"].count == 40  # capped at the data set
    # generated batch b comes from its own seed: one sample drawn again by hand matches
    G = ev.generator
    rng = torch.Generator().manual_seed(gancore.distributed.derive_seed(ev.seed, "generated", 1))
    z = G.sample_z(8, "cpu", rng)
    c = torch.randint(4, (8,), generator=rng)
    by_hand = gancore.images.to_uint8(G(z, c)).float().flatten(1) / 255 @ extractor.matrix
    torch.testing.assert_close(ev.generated(extractor, 16)["features"].rows[8:], by_hand)


def test_metrics_of_one_evaluation_share_each_embedding() -> None:
    ev = evaluation()
    extractor = Projection()
    first = ev.generated(extractor, 20)
    assert extractor.embedded == 20
    assert ev.generated(extractor, 20) is first
    assert ev.generated(extractor, 20, keep_rows=False) is first  # the moments of rows already there
    ev.real(extractor, keep_rows=False)
    embedded = extractor.embedded
    ev.real(extractor, keep_rows=False)
    assert extractor.embedded == embedded


def test_reference_features_are_cached_under_data_network_and_preprocessing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gancore.evaluation, "ROWS_UP_TO", 0)  # moments alone are stored unless rows are asked for
    cache = tmp_path / "cache"
    extractor = Projection()
    first = evaluation(cache=cache, data_key="digits").real(extractor, keep_rows=False)["features"]
    assert len(list((cache / "reference").glob("*.pt"))) == 1
    again = Projection()
    second = evaluation(cache=cache, data_key="digits").real(again, keep_rows=False)["features"]
    assert again.embedded == 0
    torch.testing.assert_close(second.cov, first.cov, rtol=0, atol=0)
    for changed in ({"data_key": "other"}, {"data": images(seed=1)}):  # another recipe, other content
        fresh = Projection()
        evaluation(changed.get("data"), cache=cache, data_key=changed.get("data_key", "digits")).real(fresh)
        assert fresh.embedded > 0
    network = Projection(seed=5)  # another network or preprocessing: another key
    evaluation(cache=cache, data_key="digits").real(network, keep_rows=False)
    assert network.embedded > 0
    # rows serve a later request for moments; a damaged file is said and computed again
    rows_file = evaluation(cache=cache, data_key="rows").real(Projection())
    reused = Projection()
    evaluation(cache=cache, data_key="rows").real(reused, keep_rows=False)
    assert reused.embedded == 0 and rows_file["features"].rows is not None
    for path in (cache / "reference").glob("*.pt"):
        path.write_bytes(b"not a torch file")
    damaged = Projection()
    evaluation(cache=cache, data_key="digits").real(damaged, keep_rows=False)
    assert damaged.embedded > 0
    assert "ignoring the cached reference features" in capsys.readouterr().err
