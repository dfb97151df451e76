"""The MLP networks and the mixture_modes metric against hand counts and known distributions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gancore
from gancore.evaluation import Evaluation


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), classes=st.sampled_from([0, 3]), resolution=st.sampled_from([0, 4]))
def test_mlp_shapes_ranges_and_gradients(batch: int, classes: int, resolution: int) -> None:
    channels = 2 if resolution == 0 else 3
    G = gancore.create("generator", "mlp", z_dim=8, width=16, depth=2, channels=channels,
                       resolution=resolution, num_classes=classes)
    D = gancore.create("discriminator", "mlp", width=16, depth=2, channels=channels, resolution=resolution,
                       num_classes=classes)
    c = torch.randint(classes, (batch,)) if classes else None
    x = G(G.sample_z(batch), c)
    assert x.shape == (batch, *G.output_shape)
    if resolution:
        assert x.abs().max() <= 1  # images come out of tanh
    logits = D(x, c)
    assert logits.shape == (batch,)
    logits.sum().backward()
    for net in (G, D):
        assert all(p.grad is not None for p in net.parameters())


def test_conditional_discriminator_uses_labels() -> None:
    D = gancore.create("discriminator", "mlp", width=8, depth=1, num_classes=4)
    x = torch.randn(6, 2)
    assert not torch.allclose(D(x, torch.zeros(6, dtype=torch.long)), D(x, torch.ones(6, dtype=torch.long)))


class _MixtureGenerator(gancore.Generator):
    """Samples a Gaussian mixture exactly: z₂ picks the mode uniformly (through Φ), z₀ and z₁ are the noise.

    With ``only_mode`` every sample is that mode's centre (a collapsed generator).
    """

    def __init__(self, centers: torch.Tensor, std: float, only_mode: int | None = None) -> None:
        super().__init__(z_dim=3, num_classes=0, resolution=0, channels=2)
        self.centers, self.std, self.only_mode = centers, std, only_mode

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.only_mode is not None:
            return self.centers[self.only_mode].expand(len(z), 2)
        uniform = torch.special.ndtr(z[:, 2])
        mode = (uniform * len(self.centers)).long().clamp(max=len(self.centers) - 1)
        return self.centers[mode] + self.std * z[:, :2]


def test_mixture_modes_on_the_data_itself() -> None:
    """Exact samples of the data's distribution cover all 25 modes; P(‖x − μ‖ < 3σ) for a 2-D Gaussian is 1 − exp(−9/2)."""
    data = gancore.create("dataset", "gaussians_grid", size=20_000)
    metric = gancore.create("metric", "mixture_modes", num_samples=20_000)
    result = metric.compute(Evaluation(_MixtureGenerator(data.centers, data.std), data, progress=False))
    assert result["modes"] == 25
    assert result["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert result["reverse_kl"] < 0.01


def test_mixture_modes_of_a_collapsed_generator() -> None:
    data = gancore.create("dataset", "gaussians_ring")
    metric = gancore.create("metric", "mixture_modes", num_samples=1000)
    result = metric.compute(Evaluation(_MixtureGenerator(data.centers, data.std, only_mode=3), data, progress=False))
    assert result == {"modes": 1, "high_quality": 1.0, "reverse_kl": pytest.approx(math.log(8))}


def test_mixture_modes_refuses_other_data() -> None:
    metric = gancore.create("metric", "mixture_modes")
    with pytest.raises(ValueError, match="Gaussian-mixture"):
        metric.check(gancore.create("dataset", "digits"))
