"""Non-leaking in the ADA paper's sense (Appendix C), checked on the augmenter's own sampled distributions.

A random choice among the elements of a finite cyclic group is invertible as an operator on distributions iff
the DFT of its probability vector has no zero. Applied with probability q < 1, a uniform choice gives DFT 1 at
frequency 0 and 1 − q elsewhere; applied always (q = 1) it gives 0 at every other frequency, and leaks.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gancore_ada.geometry import blit
from gancore_ada.pipeline import Distributions, apply, blit_matrix, sample

N = 100_000
MARGIN = 6 / math.sqrt(N)  # each DFT coefficient is a mean of N bounded terms: 6 standard errors at most


def empirical(values: torch.Tensor, order: int) -> torch.Tensor:
    """Probability vector over Z_order of the sampled group elements."""
    return torch.bincount(values.long() % order, minlength=order).double() / len(values)


def sampled(op: str, p: float, seed: int, size: int = 16, mult: float = 1.0, **dist: float) -> torch.Tensor:
    draw = sample(N, size, p, {op: mult}, Distributions(**dist), generator=torch.Generator().manual_seed(seed))
    value = draw.values[op]
    return value[:, 0] if value.dim() == 2 else value


GROUPS = [("xflip", 2, {}), ("rotate90", 4, {}), ("xint", 16, {"xint_max": 0.5})]


@settings(max_examples=40, deadline=None)
@given(group=st.sampled_from(GROUPS), p=st.floats(0.0, 0.95), seed=st.integers(0, 2**16),
       mult=st.sampled_from([0.5, 1.0]))
def test_the_dft_has_no_zero_below_probability_one(group: tuple, p: float, seed: int, mult: float) -> None:
    op, order, dist = group
    q = p * mult  # the probability of applying the operation
    spectrum = torch.fft.fft(empirical(sampled(op, p, seed, mult=mult, **dist), order)).abs()
    assert abs(spectrum[0] - 1) < 1e-9
    assert spectrum[1:].min() >= (1 - q) - MARGIN
    # and no more than that: the mixture is (1 − q)·identity + q·uniform, not something milder
    assert spectrum[1:].max() <= (1 - q) + MARGIN


@settings(max_examples=6, deadline=None)
@given(group=st.sampled_from(GROUPS), seed=st.integers(0, 2**16))
def test_applied_always_the_choice_is_uniform_and_the_dft_vanishes(group: tuple, seed: int) -> None:
    op, order, dist = group
    spectrum = torch.fft.fft(empirical(sampled(op, 1.0, seed, **dist), order)).abs()
    assert spectrum[1:].max() < MARGIN


def test_xint_at_its_default_range_is_no_uniform_choice_over_the_torus() -> None:
    # the check above must be able to fail: ±1/8 of the size is not the whole group, so its DFT does not vanish
    spectrum = torch.fft.fft(empirical(sampled("xint", 1.0, 0), 16)).abs()
    assert spectrum[1:].max() > 10 * MARGIN


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**16), size=st.sampled_from([8, 17, 32]))
def test_blits_invert_exactly_on_the_interior(p: float, seed: int, size: int) -> None:
    g = torch.Generator().manual_seed(seed)
    draw = sample(8, size, p, {"xflip": 1.0, "rotate90": 1.0, "xint": 1.0}, Distributions(), generator=g)
    matrix = blit_matrix(draw, 8, torch.device("cpu"))
    x = torch.rand(8, 3, size, size, generator=g)
    out = blit(x, matrix)
    back = blit(out, torch.linalg.inv(matrix))
    border = int(draw.values["xint"].abs().max())
    inner = (slice(None), slice(None), slice(border, size - border), slice(border, size - border))
    assert torch.equal(back[inner], x[inner])
    # the blit did something wherever a non-identity element was drawn (so the round trip is not vacuous)
    moved = torch.stack([draw.values[k].reshape(8, -1).ne(0).any(1) for k in ("xflip", "rotate90", "xint")]).any(0)
    for i in moved.nonzero().view(-1).tolist():
        assert not torch.equal(out[i], x[i])


def test_blits_are_flips_and_quarter_turns() -> None:
    x = torch.rand(4, 3, 9, 9)
    draw = sample(4, 9, 1.0, {"rotate90": 1.0}, Distributions(), generator=torch.Generator().manual_seed(0))
    draw.values["rotate90"] = torch.arange(4, dtype=torch.float64)
    turned = blit(x, blit_matrix(draw, 4, torch.device("cpu")))
    for k in range(4):
        assert torch.equal(turned[k], torch.rot90(x[k], -k, dims=(1, 2)))  # clockwise on screen (y down)
    draw = sample(2, 9, 1.0, {"xflip": 1.0}, Distributions())
    draw.values["xflip"] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    flipped = blit(x[:2], blit_matrix(draw, 2, torch.device("cpu")))
    assert torch.equal(flipped[0], x[0]) and torch.equal(flipped[1], x[1].flip(-1))


def reference_blits(x: torch.Tensor, flip: torch.Tensor, quarter: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Independent of the matrices: mirror horizontally, turn by quarter turns (clockwise on screen, as above), then
    move by whole pixels (+x right, +y down), reading mirrored pixels where the shift uncovers the border."""
    out = []
    for img, f, k, (tx, ty) in zip(x, flip.long().tolist(), quarter.long().tolist(), shift.long().tolist()):
        img = img.flip(-1) if f else img
        img = torch.rot90(img, -k, dims=(1, 2))
        pad = max(abs(tx), abs(ty))
        if pad:
            big = torch.nn.functional.pad(img.unsqueeze(0), (pad, pad, pad, pad), mode="reflect")[0]
            size = img.shape[-1]
            img = big[:, pad - ty:pad - ty + size, pad - tx:pad - tx + size]
        out.append(img)
    return torch.stack(out)


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**16), size=st.sampled_from([8, 15, 32]),
       channels=st.sampled_from([1, 3]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_the_pipeline_applies_blit_only_draws_exactly(p: float, seed: int, size: int, channels: int,
                                                      dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(seed)
    draw = sample(8, size, p, {"xflip": 1.0, "rotate90": 1.0, "xint": 1.0}, Distributions(), generator=g)
    x = torch.randn(8, channels, size, size, generator=g, dtype=dtype)
    out = apply(x, draw)
    v = draw.values
    assert out.dtype == dtype and torch.equal(out, reference_blits(x, v["xflip"], v["rotate90"], v["xint"]))
    # only gathered pixels: every output value is one of the image's own, so the range is kept exactly
    for img, src in zip(out, x):
        assert bool(torch.isin(img, src).all())
        assert float(img.min()) >= float(src.min()) and float(img.max()) <= float(src.max())
