"""The example plugin's components, built through an isolated registry as a recipe would build them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from gancore import Augmenter, ConfigError, Loss, Registry
from gancore.conformance import examples
from gancore.testing import check_component

import gancore_plugin_example

MakeRegistry = Callable[..., Registry]

REAL = [0.0, 1.5, -2.0, 0.3]
FAKE = [0.5, -1.0, 2.5, -0.2]


def test_plugin_registers_both_components(gancore_registry: MakeRegistry) -> None:
    registry = gancore_registry(gancore_plugin_example)
    info = registry.plugins["gancore_plugin_example"]
    assert (info.status, info.error) == ("ok", "")
    assert info.components == ["loss:relativistic_hinge", "augmenter:gaussian_noise"]
    assert "relativistic_hinge" in registry.names("loss") and "hinge" in registry.names("loss")


@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_relativistic_hinge_against_hand_computation(gancore_registry: MakeRegistry, margin: float) -> None:
    loss = gancore_registry(gancore_plugin_example).create("loss", "relativistic_hinge", margin=margin)
    assert isinstance(loss, Loss) and loss.relativistic
    d_terms = [max(0.0, margin - (r - f)) for r, f in zip(REAL, FAKE)]
    g_terms = [max(0.0, margin - (f - r)) for r, f in zip(REAL, FAKE)]
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(sum(d_terms) / 4)
    assert loss.generator_loss(fake, real).item() == pytest.approx(sum(g_terms) / 4)


def test_relativistic_hinge_gradients(gancore_registry: MakeRegistry) -> None:
    loss = gancore_registry(gancore_plugin_example).create("loss", "relativistic_hinge")
    real = torch.tensor(REAL, requires_grad=True)
    fake = torch.tensor(FAKE, requires_grad=True)
    loss.discriminator_loss(real, fake).backward()
    # relu(1 − r + f) is active where r − f < 1: pairs 0, 2 and 3 (differences −0.5, −4.5, 0.5)
    active = torch.tensor([1.0, 0.0, 1.0, 1.0])
    assert torch.allclose(real.grad, -active / 4)
    assert torch.allclose(fake.grad, active / 4)
    real.grad = None
    fake = torch.tensor(FAKE, requires_grad=True)
    loss.generator_loss(fake, real).backward()
    # relu(1 − f + r) is active where f − r < 1: pairs 0, 1 and 3 (differences 0.5, −2.5, −0.5); reals stay constants
    assert torch.allclose(fake.grad, -torch.tensor([1.0, 1.0, 0.0, 1.0]) / 4)
    assert real.grad is None


def test_relativistic_hinge_refuses_unpaired_logits(gancore_registry: MakeRegistry) -> None:
    loss = gancore_registry(gancore_plugin_example).create("loss", "relativistic_hinge")
    with pytest.raises(ValueError, match="index by index"):
        loss.discriminator_loss(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="needs D's logits on reals"):
        loss.generator_loss(torch.zeros(4), None)


def test_relativistic_hinge_rejects_a_nonpositive_margin(gancore_registry: MakeRegistry) -> None:
    with pytest.raises(ConfigError, match=r"params.margin = 0"):
        gancore_registry(gancore_plugin_example).create("loss", "relativistic_hinge", margin=0)


def test_noise_at_p0_is_the_identity(gancore_registry: MakeRegistry) -> None:
    noise = gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", sigma=1.0, p=0.0)
    assert isinstance(noise, Augmenter)
    x = torch.randn(16, 3, 8, 8)
    assert torch.equal(noise(x), x)


@pytest.mark.parametrize("shape", [(4000, 2), (64, 3, 8, 8)])
def test_noise_at_p1_has_the_requested_std(gancore_registry: MakeRegistry, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    noise = gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", sigma=0.3, p=1.0)
    x = torch.randn(shape)
    delta = noise(x) - x
    assert delta.shape == x.shape
    assert delta.mean().item() == pytest.approx(0.0, abs=0.02)
    assert delta.std().item() == pytest.approx(0.3, rel=0.03)


def test_noise_reaches_each_sample_with_probability_p(gancore_registry: MakeRegistry) -> None:
    torch.manual_seed(0)
    noise = gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", sigma=1.0, p=0.25)
    x = torch.zeros(8000, 3, 4, 4)
    touched = (noise(x) != 0).flatten(1)
    assert torch.equal(touched.all(1), touched.any(1)), "a sample is noised whole or not at all"
    assert touched.any(1).float().mean().item() == pytest.approx(0.25, abs=0.02)


def test_noise_is_differentiable(gancore_registry: MakeRegistry) -> None:
    noise = gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", sigma=0.5, p=0.5)
    x = torch.randn(32, 2, requires_grad=True)
    weights = torch.randn(32, 2)
    (noise(x) * weights).sum().backward()
    assert torch.equal(x.grad, weights)


def test_noise_anneals_linearly_to_zero(gancore_registry: MakeRegistry) -> None:
    noise = gancore_registry(gancore_plugin_example).create(
        "augmenter", "gaussian_noise", sigma=0.4, anneal_kimg=10
    )
    logits = torch.zeros(8)
    for kimg, expected in [(0.0, 0.4), (2.5, 0.3), (5.0, 0.2), (10.0, 0.0), (50.0, 0.0)]:
        noise.update(kimg, logits)
        assert noise.sigma.item() == pytest.approx(expected)
    x = torch.randn(16, 2)
    assert torch.equal(noise(x), x)
    assert set(noise.state_dict()) == {"p", "sigma"}


def test_noise_without_annealing_keeps_sigma(gancore_registry: MakeRegistry) -> None:
    noise = gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", sigma=0.4)
    noise.update(1000.0, torch.zeros(8))
    assert noise.sigma.item() == pytest.approx(0.4)


def test_noise_rejects_a_probability_above_one(gancore_registry: MakeRegistry) -> None:
    with pytest.raises(ConfigError, match=r"params.p = 1.5"):
        gancore_registry(gancore_plugin_example).create("augmenter", "gaussian_noise", p=1.5)


@pytest.mark.parametrize(("kind", "name"), [("loss", "relativistic_hinge"), ("augmenter", "gaussian_noise")])
def test_components_honour_gancores_contracts(gancore_registry: MakeRegistry, kind: str, name: str) -> None:
    """gancore's conformance kit, on every example parameter set the component declares."""
    registry = gancore_registry(gancore_plugin_example)
    for params in examples(registry, kind, name):
        report = check_component(kind, name, params, registry=registry)
        assert report.clauses
