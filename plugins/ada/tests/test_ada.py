"""The ``ada`` component: p = 0 is the identity, dtypes and gradients, seeds, adaptive and scheduled p, state,
the refusal of leaking configurations, and the colour matrices against independent computations."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gancore.errors import ConfigError
from gancore.registry import default_registry
from gancore.schedule import Schedule
from hypothesis import given, settings
from hypothesis import strategies as st

from gancore_ada.ada import ADA
from gancore_ada.pipeline import PRESETS, Distributions, apply, color_matrix, sample

REGISTRY = default_registry()


def ada(**params: Any) -> ADA:
    return REGISTRY.create("augmenter", "ada", params)


@settings(max_examples=20, deadline=None)
@given(preset=st.sampled_from(sorted(PRESETS)), seed=st.integers(0, 2**16), channels=st.sampled_from([1, 3]))
def test_p_zero_is_the_identity_bit_for_bit(preset: str, seed: int, channels: int) -> None:
    x = torch.randn(4, channels, 16, 16, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(ada(preset=preset, p=0.0)(x), x)
    # and the pipeline itself, with every operation drawn but none applied
    draw = sample(4, 16, 0.0, {k: 1.0 for k in ("xflip", "scale", "hue", "imgfilter", "noise", "cutout")},
                  Distributions())
    assert torch.equal(apply(x, draw), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_and_dtype_are_kept(dtype: torch.dtype, channels: int) -> None:
    x = (torch.rand(6, channels, 16, 16) * 2 - 1).to(dtype)
    out = ada(preset="bgcfnc", p=0.7)(x)
    assert out.shape == x.shape and out.dtype == dtype and bool(out.float().isfinite().all())
    assert not torch.equal(out, x)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_gradients_reach_the_input(preset: str) -> None:
    torch.manual_seed(0)
    x = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    out = ada(preset=preset, p=0.5)(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all()) and float(x.grad.abs().sum()) > 0


def test_the_same_seed_gives_the_same_augmentation_and_images_differ() -> None:
    x = (torch.rand(1, 3, 16, 16) * 2 - 1).repeat(8, 1, 1, 1)
    augment = ada(preset="bgcfnc", p=0.8)
    torch.manual_seed(5)
    a = augment(x)
    torch.manual_seed(5)
    b = augment(x)
    assert torch.equal(a, b)
    # one image repeated eight times comes out as eight different images
    assert len({tuple(img.flatten()[:32].tolist()) for img in a}) == 8


def test_adaptive_p_moves_by_the_images_seen_every_interval() -> None:
    augment = ada(preset="bgc", p=0.0, target=0.6, interval=4, adjust_kimg=500)
    step = 64 * 4 / 500_000
    positive = torch.ones(64)
    for adjustment in range(3):
        for call in range(4):
            before = float(augment.p)
            augment.update(0.0, positive)
            if call < 3:
                assert float(augment.p) == before
        assert math.isclose(float(augment.p), (adjustment + 1) * step, rel_tol=1e-6)
        assert float(augment.rt) == 1.0
    for _ in range(40):
        augment.update(0.0, -positive)
    assert float(augment.p) == 0.0 and float(augment.rt) == -1.0
    assert augment.scalars() == {"p": 0.0, "rt": -1.0}


def test_adaptive_p_stays_at_zero_while_d_does_not_overfit() -> None:
    augment = ada(preset="bgc", p=0.0, target=0.6, interval=4, adjust_kimg=500)
    for _ in range(12):
        augment.update(0.0, -torch.ones(64))
        assert float(augment.p) == 0.0
    assert float(augment.rt) == -1.0 and int(augment.steps) == 12


def test_adaptive_p_stays_below_one() -> None:
    augment = ada(preset="bgc", p=0.9, target=0.6, interval=1, adjust_kimg=0.001)
    for _ in range(200):
        augment.update(0.0, torch.ones(64))
        assert float(augment.p) <= 0.99 + 1e-7  # the buffer is float32
    assert float(augment.p) == pytest.approx(0.99)


def test_the_state_round_trips_and_continues_identically() -> None:
    first = ada(preset="bgc", p=0.1, target=0.6, interval=3, adjust_kimg=10)
    g = torch.Generator().manual_seed(0)
    for _ in range(7):
        first.update(0.0, torch.randn(32, generator=g))
    second = ada(preset="bgc", p=0.1, target=0.6, interval=3, adjust_kimg=10)
    second.load_state_dict(first.state_dict())
    assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in ("p", "signs", "rt", "steps"))
    for _ in range(5):
        logits = torch.randn(32, generator=g) + 0.5
        first.update(0.0, logits)
        second.update(0.0, logits)
        assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in ("p", "signs", "rt", "steps"))
    assert float(second.p) != 0.1  # p did move after the restore, in step
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(3)
    a = first(x)
    torch.manual_seed(3)
    assert torch.equal(a, second(x))
    # and the restore is what made them agree: a fresh instance is not in that state
    fresh = ada(preset="bgc", p=0.1, target=0.6, interval=3, adjust_kimg=10)
    assert not torch.equal(fresh.p, first.p) or not torch.equal(fresh.steps, first.steps)


def test_scheduled_p_follows_the_schedule() -> None:
    augment = ada(preset="bgc", color_multiplier=0.5, cutout=1, p={"start": 0, "end": 0.55, "burn_in_kimg": 100})
    schedule = Schedule(start=0, end=0.55, burn_in_kimg=100)
    for kimg in (0.0, 25.0, 50.0, 100.0, 300.0, 10.0):
        augment.update(kimg, torch.ones(8))
        assert float(augment.p) == pytest.approx(schedule(kimg), abs=1e-7)
        expected = 0.55 * (1 - 0.5 * (1 + math.cos(math.pi * min(kimg / 100, 1))))  # R3GAN's cosine burn-in
        assert float(augment.p) == pytest.approx(expected, abs=1e-7)
    augment.update(300.0, torch.ones(8))
    assert augment.scalars() == {"p": pytest.approx(0.55)}
    mult = augment.multipliers
    assert mult["hue"] == 0.5 and mult["cutout"] == 1 and mult["xflip"] == 1


def problems(params: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        REGISTRY.validate_params("augmenter", "ada", params, "augmenter")
    return info.value.problems


@pytest.mark.parametrize(("params", "words"), [
    ({"preset": "bgc", "p": 0.8, "rotate90": 1.5},
     "rotate90 would be applied to every image (multiplier 1.5 × p up to 0.8)"),
    ({"preset": "bgc", "p": 1.0}, "p = 1 augments every image, which leaks"),
    ({"preset": "bgc", "p": {"start": 0, "end": 1}}, "p must stay below 1"),
    ({"preset": "bgc", "p": 0.5, "cutout": 2}, "cutout would be applied to every image"),
    ({"preset": "bgc", "p": 0.0, "target": 0.6, "xflip": 1.02},
     "xflip would be applied to every image (multiplier 1.02 × p up to 0.99)"),
    ({"preset": "bgc", "p": 0.6, "color_multiplier": 2.0}, "lumaflip would be applied to every image"),
    ({"preset": "bgc", "p": {"start": 0, "end": 0.5}, "target": 0.6}, "give p as a number, not a schedule"),
])
def test_leaking_configurations_are_refused_with_the_reason(params: dict[str, Any], words: str) -> None:
    found = problems(params)
    assert len(found) == 1 and found[0].startswith("augmenter.params: ") and words in found[0]
    if "would be applied" in words:
        assert "leaks" in found[0]
    if params["p"] == 1.0:
        assert "p must stay below 1" in found[0]


@pytest.mark.parametrize("params", [
    {"preset": "bgc", "color_multiplier": 0.5, "cutout": 1, "p": {"start": 0, "end": 0.55, "burn_in_kimg": 20000}},
    {"preset": "bgcfnc", "p": 0.5},
    {"preset": "bgc", "p": 0.0, "target": 0.6},
    {"preset": "bgc", "p": 0.5, "scale": 3.0},  # a Gaussian parameter applied always does not leak
])
def test_non_leaking_configurations_pass(params: dict[str, Any]) -> None:
    REGISTRY.validate_params("augmenter", "ada", params, "augmenter")


def colour_draw(op: str, n: int = 64, **dist: float):  # noqa: ANN201
    return sample(n, 8, 1.0, {op: 1.0}, Distributions(**dist), generator=torch.Generator().manual_seed(2))


def test_colour_matrices_do_what_their_operations_say() -> None:
    cpu = torch.device("cpu")
    rgb = torch.rand(64, 3, dtype=torch.float64) * 2 - 1
    homog = torch.cat([rgb, torch.ones(64, 1, dtype=torch.float64)], 1).unsqueeze(-1)

    def act(op: str, **dist: float) -> tuple[torch.Tensor, Any]:
        draw = colour_draw(op, **dist)
        return (color_matrix(draw, 64, cpu) @ homog)[:, :3, 0], draw

    flip = color_matrix(colour_draw("lumaflip"), 64, cpu)
    assert torch.allclose(flip @ flip, torch.eye(4, dtype=torch.float64).expand(64, 4, 4), atol=1e-12)
    assert not torch.allclose(flip, torch.eye(4, dtype=torch.float64))
    hued, _ = act("hue")
    grey = rgb.mean(1, keepdim=True)
    assert torch.allclose(hued.mean(1, keepdim=True), grey, atol=1e-12)
    assert torch.allclose((hued - hued.mean(1, keepdim=True)).norm(dim=1), (rgb - grey).norm(dim=1), atol=1e-12)
    assert not torch.allclose(hued, rgb, atol=1e-3)
    bright, draw = act("brightness")
    assert torch.allclose(bright, rgb + draw.values["brightness"].unsqueeze(1), atol=1e-12)
    draw = colour_draw("saturation")
    draw.values["saturation"] = torch.zeros(64, dtype=torch.float64)
    desaturated = (color_matrix(draw, 64, cpu) @ homog)[:, :3, 0]
    assert torch.allclose(desaturated, grey.expand(64, 3), atol=1e-12)


def rodrigues(theta: float) -> torch.Tensor:
    """Right-handed rotation by theta about the luma axis v = (1, 1, 1)/√3: cos θ·I + sin θ·[v]× + (1 − cos θ)·vvᵀ."""
    v = torch.ones(3, dtype=torch.float64) / math.sqrt(3)
    cross = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=torch.float64)
    return math.cos(theta) * torch.eye(3, dtype=torch.float64) + math.sin(theta) * cross \
        + (1 - math.cos(theta)) * torch.outer(v, v)


def colour_in_turn(x: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """ADA's colour operations one after the other, per image, written from their definitions (no matrices):
    brightness adds b, contrast multiplies by c, lumaflip reflects through the plane orthogonal to the luma axis
    (x − 2·mean), hue rotates about the luma axis, saturation scales the distance from the grey axis."""
    out = []
    for i, img in enumerate(x):
        img = img + values["brightness"][i]
        img = img * values["contrast"][i]
        img = img - 2 * img.mean(0, keepdim=True) * values["lumaflip"][i]
        img = torch.einsum("ij,jhw->ihw", rodrigues(float(values["hue"][i])), img)
        grey = img.mean(0, keepdim=True)
        out.append(grey + (img - grey) * values["saturation"][i])
    return torch.stack(out)


COLOUR = ["brightness", "contrast", "lumaflip", "hue", "saturation"]


@settings(max_examples=20, deadline=None)
@given(p=st.floats(0.2, 1.0), seed=st.integers(0, 2**16))
def test_composed_colour_matrix_equals_the_operations_in_turn(p: float, seed: int) -> None:
    draw = sample(16, 8, p, {op: 1.0 for op in COLOUR}, Distributions(), generator=torch.Generator().manual_seed(seed))
    x = torch.rand(16, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    expected = colour_in_turn(x, draw.values)
    assert torch.allclose(apply(x, draw), expected, atol=1e-10)
    # single-channel images get the mean of the first three rows: what a grey RGB image averages to
    grey = x[:, :1]
    assert torch.allclose(apply(grey, draw), colour_in_turn(grey.expand(-1, 3, -1, -1), draw.values).mean(1, True),
                          atol=1e-10)


def test_hue_is_a_right_handed_rotation_about_the_luma_axis_by_the_drawn_angle() -> None:
    draw = colour_draw("hue")
    matrix = color_matrix(draw, 64, torch.device("cpu"))
    for m, theta in zip(matrix, draw.values["hue"].tolist()):
        r = m[:3, :3]
        assert torch.allclose(r.T @ r, torch.eye(3, dtype=torch.float64), atol=1e-12)
        assert math.isclose(float(torch.linalg.det(r)), 1.0, abs_tol=1e-12)
        assert torch.allclose(r @ torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), atol=1e-12)
        assert math.isclose((float(torch.trace(r)) - 1) / 2, math.cos(theta), abs_tol=1e-12)  # the angle
        assert torch.allclose(r, rodrigues(theta), atol=1e-12)  # and its sense
        assert torch.equal(m[3], torch.tensor([0, 0, 0, 1], dtype=torch.float64)) and float(m[:3, 3].abs().max()) == 0


def test_contrast_multiplies_and_brightness_comes_first() -> None:
    draw = sample(8, 8, 1.0, {"brightness": 1.0, "contrast": 1.0}, Distributions(),
                  generator=torch.Generator().manual_seed(6))
    rgb = torch.rand(8, 3, 1, 1, dtype=torch.float64)
    b, c = draw.values["brightness"].view(-1, 1, 1, 1), draw.values["contrast"].view(-1, 1, 1, 1)
    assert torch.allclose(apply(rgb, draw), (rgb + b) * c, atol=1e-12)
    assert not torch.allclose(apply(rgb, draw), rgb * c + b, atol=1e-6)


def test_rt_is_reported_once_it_has_been_measured() -> None:
    augment = ada(preset="bgc", p=0.0, target=0.6, interval=2)
    augment.update(0.0, torch.ones(8))
    assert augment.scalars() == {"p": 0.0}
    augment.update(0.0, -torch.ones(8))
    assert augment.scalars() == {"p": 0.0, "rt": 0.0}
