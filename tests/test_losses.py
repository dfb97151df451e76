"""The built-in losses against closed forms computed by hand, their gradients and their sign conventions."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import gancore
from gancore.interfaces import Loss

NAMES = ["nonsaturating", "hinge", "wasserstein", "least_squares", "rpgan"]

REAL = [0.0, 1.5, -2.0, 0.3]
FAKE = [0.5, -1.0, 2.5, -0.2]


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


# Per-element losses written with Python floats, independent of the implementation.
D_LOSS: dict[str, Callable[[float, float], float]] = {
    "nonsaturating": lambda r, f: softplus(-r) + softplus(f),
    "hinge": lambda r, f: max(0.0, 1 - r) + max(0.0, 1 + f),
    "wasserstein": lambda r, f: f - r,
    "least_squares": lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f**2,
    "rpgan": lambda r, f: softplus(-(r - f)),
}
G_LOSS: dict[str, Callable[[float, float], float]] = {
    "nonsaturating": lambda r, f: softplus(-f),
    "hinge": lambda r, f: -f,
    "wasserstein": lambda r, f: -f,
    "least_squares": lambda r, f: 0.5 * (f - 1) ** 2,
    "rpgan": lambda r, f: softplus(-(f - r)),
}
# Derivatives of the per-element losses: (∂/∂r, ∂/∂f) of D's, ∂/∂f of G's.
D_GRAD: dict[str, Callable[[float, float], tuple[float, float]]] = {
    "nonsaturating": lambda r, f: (-sigmoid(-r), sigmoid(f)),
    "hinge": lambda r, f: (-1.0 if r < 1 else 0.0, 1.0 if f > -1 else 0.0),
    "wasserstein": lambda r, f: (-1.0, 1.0),
    "least_squares": lambda r, f: (r - 1, f),
    "rpgan": lambda r, f: (-sigmoid(f - r), sigmoid(f - r)),
}
G_GRAD: dict[str, Callable[[float, float], float]] = {
    "nonsaturating": lambda r, f: -sigmoid(-f),
    "hinge": lambda r, f: -1.0,
    "wasserstein": lambda r, f: -1.0,
    "least_squares": lambda r, f: f - 1,
    "rpgan": lambda r, f: -sigmoid(r - f),
}


def make(name: str) -> Loss:
    return gancore.default_registry().create("loss", name)


def logits(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def g_loss(loss: Loss, real: Tensor, fake: Tensor) -> Tensor:
    return loss.generator_loss(fake, real if loss.relativistic else None)


@pytest.mark.parametrize("name", NAMES)
def test_built_through_the_registry_with_a_description(name: str) -> None:
    spec = gancore.default_registry().get("loss", name)
    assert isinstance(make(name), Loss)
    assert spec.description
    assert list(spec.params.model_fields) == []


def test_only_rpgan_is_relativistic() -> None:
    assert {name for name in NAMES if make(name).relativistic} == {"rpgan"}


@pytest.mark.parametrize("name", NAMES)
def test_values_match_closed_forms(name: str) -> None:
    loss = make(name)
    d = loss.discriminator_loss(logits(REAL), logits(FAKE))
    g = g_loss(loss, logits(REAL), logits(FAKE))
    assert d.shape == g.shape == ()
    assert d.item() == pytest.approx(mean([D_LOSS[name](r, f) for r, f in zip(REAL, FAKE)]), rel=1e-12)
    assert g.item() == pytest.approx(mean([G_LOSS[name](r, f) for r, f in zip(REAL, FAKE)]), rel=1e-12)


def test_a_few_values_written_out() -> None:
    zero, one = torch.zeros(3), torch.ones(3)
    assert make("nonsaturating").discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert make("hinge").discriminator_loss(one, -one).item() == 0.0
    assert make("hinge").discriminator_loss(zero, zero).item() == 2.0
    assert make("wasserstein").discriminator_loss(2 * one, one).item() == -1.0
    assert make("least_squares").discriminator_loss(one, zero).item() == 0.0
    assert make("least_squares").generator_loss(zero, None).item() == 0.5
    assert make("rpgan").discriminator_loss(one, one).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_closed_forms(name: str) -> None:
    loss, n = make(name), len(REAL)
    real, fake = logits(REAL), logits(FAKE)
    grad_r, grad_f = torch.autograd.grad(loss.discriminator_loss(real, fake), [real, fake])
    expected = [D_GRAD[name](r, f) for r, f in zip(REAL, FAKE)]
    torch.testing.assert_close(grad_r, torch.tensor([e[0] / n for e in expected], dtype=torch.float64))
    torch.testing.assert_close(grad_f, torch.tensor([e[1] / n for e in expected], dtype=torch.float64))

    real, fake = logits(REAL), logits(FAKE)
    (grad_f,) = torch.autograd.grad(g_loss(loss, real, fake), [fake])
    expected_g = [G_GRAD[name](r, f) / n for r, f in zip(REAL, FAKE)]
    torch.testing.assert_close(grad_f, torch.tensor(expected_g, dtype=torch.float64))


def test_rpgan_generator_loss_treats_real_logits_as_constants() -> None:
    real, fake = logits(REAL), logits(FAKE)
    make("rpgan").generator_loss(fake, real).backward()
    assert real.grad is None
    assert fake.grad is not None


def test_rpgan_pairs_index_by_index() -> None:
    loss = make("rpgan")
    real, fake = torch.tensor([3.0, -1.0]), torch.tensor([1.0, 2.0])
    expected = (softplus(1.0 - 3.0) + softplus(2.0 + 1.0)) / 2
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="index by index"):
        loss.discriminator_loss(real, fake[:1])
    with pytest.raises(ValueError, match="logits on reals"):
        loss.generator_loss(fake, None)


@pytest.mark.parametrize("name", ["nonsaturating", "rpgan"])
def test_softplus_losses_are_stable_at_extreme_logits(name: str) -> None:
    loss = make(name)
    big = torch.full((4,), 1e4, requires_grad=True)
    assert loss.discriminator_loss(big, -big).item() == 0.0
    wrong = loss.discriminator_loss(-big, big)
    assert torch.isfinite(wrong) and wrong.item() == pytest.approx(2e4, rel=1e-6)
    (grad,) = torch.autograd.grad(wrong, big)
    assert torch.isfinite(grad).all()


finite = st.floats(-20, 20, allow_nan=False, width=64)
batch = st.lists(st.tuples(finite, finite), min_size=1, max_size=8)
step = st.floats(0.01, 5)


@settings(max_examples=60, deadline=None)
@given(pairs=batch, delta=step, name=st.sampled_from(NAMES))
def test_discriminator_loss_falls_as_reals_rise_and_fakes_fall(
    pairs: list[tuple[float, float]], delta: float, name: str
) -> None:
    loss = make(name)
    real = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    fake = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    if name == "least_squares":  # the squares fall only while r is below its target 1 and f above its target 0
        real, fake = real.clamp(max=1 - delta), fake.clamp(min=delta)
    base = loss.discriminator_loss(real, fake)
    assert loss.discriminator_loss(real + delta, fake) <= base
    assert loss.discriminator_loss(real, fake - delta) <= base


@settings(max_examples=60, deadline=None)
@given(pairs=batch, delta=step, name=st.sampled_from(NAMES))
def test_generator_loss_falls_as_fakes_rise(pairs: list[tuple[float, float]], delta: float, name: str) -> None:
    loss = make(name)
    real = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    fake = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    if name == "least_squares":  # ½(f − 1)² falls only while f is below its target 1
        fake = fake.clamp(max=1 - delta)
    assert g_loss(loss, real, fake + delta) <= g_loss(loss, real, fake)


@settings(max_examples=40, deadline=None)
@given(pairs=batch, name=st.sampled_from(NAMES))
def test_values_match_closed_forms_over_random_logits(pairs: list[tuple[float, float]], name: str) -> None:
    loss = make(name)
    real = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    fake = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(
        mean([D_LOSS[name](r, f) for r, f in pairs]), rel=1e-9, abs=1e-12
    )
    assert g_loss(loss, real, fake).item() == pytest.approx(
        mean([G_LOSS[name](r, f) for r, f in pairs]), rel=1e-9, abs=1e-12
    )
