"""FID, KID, IS and precision/recall as components: weights lookup, training-time metrics, and `gancore eval`.

The FID Inception here has random weights (a Kaiming initialisation, so that its features vary with the
image): the real file cannot be downloaded in CI. What the values mean is tested in test_distances.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import gancore
from gancore import cli
from gancore import recipe as recipes
from gancore.build import build
from gancore.builtin.metrics.inception import FIDInception
from gancore.builtin.metrics.vgg import FEATURES as VGG_FEATURES
from gancore.builtin.metrics.vgg import VGG16Features
from gancore.errors import ConfigError, GancoreError
from gancore.evaluation import Evaluation
from gancore.registry import default_registry
from gancore.training import Trainer
from gancore.weights import FID_INCEPTION, VGG16, WeightsNotFound, find_weights


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    network = FIDInception()
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / FID_INCEPTION.filename
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No variable names a weights file and torch's hub folder is empty."""
    for spec in (FID_INCEPTION, VGG16):
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def digits_recipe(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 8, "width": 32, "depth": 1, "channels": 1, "resolution": 8}},
        "discriminator": {"name": "mlp", "params": {"width": 32, "depth": 1, "channels": 1, "resolution": 8}},
        "loss": {"name": "hinge"},
        "metrics": metrics,
        "train": {"batch_size": 32, "total_kimg": 0.128, "device": "cpu", "num_workers": 0},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, inception_file: Path) -> tuple[Path, dict[str, float]]:
    """A short run on greyscale digits whose recipe measures FID, IS and precision/recall at the end."""
    weights = str(inception_file)
    raw = digits_recipe([
        {"name": "fid", "params": {"num_gen": 16, "num_real": 16, "inception_weights": weights}},
        {"name": "is", "params": {"num_gen": 16, "splits": 2, "inception_weights": weights}},
        {"name": "pr", "params": {"num_gen": 16, "num_real": 16, "network": "inception",
                                  "inception_weights": weights}},
    ])
    out = tmp_path_factory.mktemp("run")
    registry = default_registry()
    recipe = recipes.validate(raw, registry)
    return out, Trainer(recipe, build(recipe, registry), out, raw).run()


def results(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_weights_are_found_as_given_then_by_variable_then_in_torch_s_hub_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_weights_anywhere: Path) -> None:
    hub = no_weights_anywhere
    hub.mkdir(parents=True)
    (hub / FID_INCEPTION.filename).write_bytes(b"hub")
    named = tmp_path / "named.pth"
    named.write_bytes(b"named")
    given = tmp_path / "given.pth"
    given.write_bytes(b"given")
    assert find_weights(FID_INCEPTION) == hub / FID_INCEPTION.filename
    monkeypatch.setenv(FID_INCEPTION.env, str(named))
    assert find_weights(FID_INCEPTION) == named
    assert find_weights(FID_INCEPTION, str(given)) == given
    with pytest.raises(WeightsNotFound, match=r"inception_weights / --inception-weights names .*typo.pth, which is "
                                              r"not a file; it should be pt_inception-2015-12-05-6726825d.pth"):
        find_weights(FID_INCEPTION, str(tmp_path / "typo.pth"))


def test_missing_weights_say_which_file_and_where_to_put_it(no_weights_anywhere: Path) -> None:
    with pytest.raises(WeightsNotFound) as caught:
        find_weights(FID_INCEPTION)
    message = str(caught.value)
    for part in ("pt_inception-2015-12-05-6726825d.pth", "github.com/mseitzer/pytorch-fid/releases", "--inception-weights",
                 "GANCORE_INCEPTION_WEIGHTS", str(no_weights_anywhere), "downloads nothing unless asked"):
        assert part in message
    assert caught.value.param == "inception_weights"


def test_download_only_when_asked_and_checked_against_the_hash_in_the_name(
        tmp_path: Path, no_weights_anywhere: Path) -> None:
    source = tmp_path / "published.pth"
    source.write_bytes(b"weights")
    unhashed = dataclasses.replace(FID_INCEPTION, filename="plain.pth", url=source.as_uri())
    with pytest.raises(WeightsNotFound):
        find_weights(unhashed)
    assert find_weights(unhashed, download=True).read_bytes() == b"weights"
    wrong = dataclasses.replace(FID_INCEPTION, url=source.as_uri())  # the name promises sha256 6726825d…
    with pytest.raises(WeightsNotFound, match="could not download"):
        find_weights(wrong, download=True)
    assert not (no_weights_anywhere / FID_INCEPTION.filename).exists()


def test_a_recipe_whose_metric_lacks_weights_is_refused_before_training(no_weights_anywhere: Path) -> None:
    registry = default_registry()
    recipe = recipes.validate(digits_recipe([{"name": "fid50k_full"}, {"name": "kid"}]), registry)
    with pytest.raises(ConfigError) as caught:
        build(recipe, registry)
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("metrics[0].params.inception_weights: the FID Inception weights")
    assert problems[1].startswith("metrics[1].params.inception_weights:")


def test_image_metrics_refuse_points(inception_file: Path) -> None:
    metric = gancore.create("metric", "fid", inception_weights=str(inception_file))
    with pytest.raises(ValueError, match=r"RGB or greyscale images, but the data's items are shaped \(2,\)"):
        metric.check(gancore.create("dataset", "gaussians_grid"))


def test_training_computes_the_recipe_s_metrics_and_records_them(trained: tuple[Path, dict[str, float]]) -> None:
    run, final = trained
    assert set(final) == {"fid/fid", "is/is_mean", "is/is_std", "pr/precision", "pr/recall"}
    assert final["fid/fid"] > 0 and math.isfinite(final["fid/fid"])
    assert 1 <= final["is/is_mean"] <= 1008
    assert 0 <= final["pr/precision"] <= 1 and 0 <= final["pr/recall"] <= 1
    lines = results(run)
    assert [line["metric"] for line in lines] == ["fid", "is", "pr"]
    assert lines[0]["results"] == {"fid": final["fid/fid"]} and lines[0]["kimg"] == pytest.approx(0.128)
    assert json.loads((run / "metrics.json").read_text())["fid/fid"] == final["fid/fid"]


def test_eval_of_the_final_networks_repeats_the_trainer_s_numbers(trained: tuple[Path, dict[str, float]],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run, final = trained
    before = len(results(run))
    assert cli.main(["eval", str(run), "--device", "cpu"]) == 0  # the recipe's metrics, the real features cached
    added = results(run)[before:]
    assert {f"{e['metric']}/{k}": v for e in added for k, v in e["results"].items()} == final
    assert all(e["network"].endswith(".pt") and e["processes"] == 1 for e in added)
    assert "results appended to" in capsys.readouterr().out
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert "Metrics/fid/fid" in events.Tags()["scalars"]


def test_eval_options_set_every_metric_that_takes_them(trained: tuple[Path, dict[str, float]],
                                                       inception_file: Path) -> None:
    run, final = trained
    before = len(results(run))
    assert cli.main(["eval", str(run), "--metric", "kid", "--metric", "fid", "--num-gen", "16", "--num-real", "16",
                     "--inception-weights", str(inception_file)]) == 0
    kid, fid = results(run)[before:]
    assert fid["results"]["fid"] == final["fid/fid"]
    assert kid["params"] == {"num_gen": 16, "num_real": 16, "inception_weights": str(inception_file)}
    assert math.isfinite(kid["results"]["kid"])


@pytest.mark.parametrize(("options", "message"), [
    (["--metric", "fid50k_full", "--num-gen", "10"], "--num-gen applies to none of the metrics asked for "
                                                    "(fid50k_full)"),
    (["--metric", "pr50k3_full"], "--metric pr50k3_full: torchvision's ImageNet VGG16 weights (528 MB) are needed"),
    (["--metric", "nonsense"], "nonsense"),
    (["--metric", "mixture_modes"], "--metric mixture_modes: mixture_modes measures a Gaussian-mixture data set"),
])
def test_eval_explains_what_it_cannot_do(trained: tuple[Path, dict[str, float]], options: list[str], message: str,
                                         capsys: pytest.CaptureFixture[str], no_weights_anywhere: Path) -> None:
    run, _ = trained
    before = len(results(run))
    assert cli.main(["eval", str(run), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(results(run)) == before


def test_eval_of_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", str(tmp_path), "--metric", "fid"]) == 2
    assert "is not a gancore run directory" in capsys.readouterr().err


def test_inception_score_of_a_generator_that_makes_one_image_is_one(inception_file: Path) -> None:
    class Constant(gancore.Generator):
        def __init__(self) -> None:
            super().__init__(z_dim=2, num_classes=0, resolution=8, channels=1)

        def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            return torch.full((len(z), 1, 8, 8), 0.3)

    data = gancore.create("dataset", "digits")
    evaluation = Evaluation(Constant(), data, batch_size=8, progress=False)
    score = gancore.create("metric", "is", num_gen=8, splits=2, inception_weights=str(inception_file))
    result = score.compute(evaluation)
    assert result["is_mean"] == pytest.approx(1.0, abs=1e-9) and result["is_std"] == pytest.approx(0.0, abs=1e-9)


def test_vgg16_features_are_fc2_after_its_relu_on_the_imagenet_scale() -> None:
    from torchvision.models import vgg16

    torch.manual_seed(0)
    reference = vgg16(weights=None).eval()
    extractor = VGG16Features(reference.state_dict(), "digest", torch.device("cpu"))
    images = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    features = extractor(images)["features"]
    assert features.shape == (2, VGG_FEATURES) and bool((features >= 0).all())
    # the same images through torchvision's own transforms and the whole classifier less its last layer
    from torchvision.transforms import v2

    prepare = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize((224, 224), antialias=True),
                          v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = prepare(images.expand(-1, 3, -1, -1))
    reference.classifier = reference.classifier[:5]
    with torch.no_grad():
        torch.testing.assert_close(features, reference(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(GancoreError, match="not torchvision's VGG16 weights"):
        VGG16Features({"features.0.weight": torch.zeros(1)}, "digest", torch.device("cpu"))
