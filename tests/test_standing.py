"""Standing statistics (BigGAN): G's BatchNorm statistics averaged over random batches, applied before sampling."""

from __future__ import annotations

import torch

import gancore
from gancore.batchnorm import stand
from gancore.evaluation import Evaluation, FeatureExtractor


def generator() -> gancore.Generator:
    torch.manual_seed(0)
    return gancore.create("generator", "mlp", z_dim=6, width=16, depth=2, channels=1, resolution=4, num_classes=3,
                          batchnorm=True)


def test_standing_statistics_are_the_plain_average_of_the_batches_statistics() -> None:
    G = generator().eval()
    norm = next(m for m in G.modules() if isinstance(m, torch.nn.BatchNorm1d))
    inputs: list[torch.Tensor] = []
    norm.register_forward_hook(lambda module, args, out: inputs.append(args[0].detach()))
    stand(G, passes=5, batch_size=32, seed=3)
    assert len(inputs) == 5 and not G.training and norm.momentum == 0.1  # mode and momentum restored
    means = torch.stack([x.mean(0) for x in inputs])
    variances = torch.stack([x.var(0, unbiased=True) for x in inputs])
    torch.testing.assert_close(norm.running_mean, means.mean(0))
    torch.testing.assert_close(norm.running_var, variances.mean(0))


def test_a_generator_that_asks_for_them_is_stood_before_its_samples_are_embedded() -> None:
    class Pixels(FeatureExtractor):
        key, name = "pixels", "pixels"

        def __call__(self, samples: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"pixels": samples.float().flatten(1)}

    data = gancore.create("dataset", "digits", resolution=4)
    G = generator().eval()
    G.standing_statistics = 4
    Evaluation(G, data, seed=1, progress=False).generated(Pixels(), 8)
    stood, untouched = generator(), generator()
    stand(stood, 4, 64, seed=1)
    norms = [name for name, m in G.named_modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms
    for name in norms:
        for buffer in ("running_mean", "running_var"):
            key = f"{name}.{buffer}"
            torch.testing.assert_close(G.state_dict()[key], stood.state_dict()[key], rtol=0, atol=0, msg=key)
            assert not torch.equal(G.state_dict()[key], untouched.state_dict()[key])
