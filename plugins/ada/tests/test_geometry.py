"""The one anti-aliased resampling: identity is exact, and a sampled transform followed by its inverse returns
a band-limited image on the interior within an interpolation error bound."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gancore_ada.geometry import resample, rotation, translation
from gancore_ada.pipeline import Distributions, general_matrix, sample
from gancore_ada.wavelets import SYM6, downsample2x, upsample2x

SIZE = 32
OMEGA = 2 * math.pi / 8  # the test images' highest angular frequency: 1/8 cycle per pixel
MARGIN = 4  # pixels kept away from the borders, where reflection is only approximate


def smooth_images(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 1, SIZE, SIZE) float64 sums of 3 plane waves, |frequency| ≤ OMEGA, amplitudes summing to 1."""
    coords = torch.arange(SIZE, dtype=torch.float64) - (SIZE - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.zeros(n, 1, SIZE, SIZE, dtype=torch.float64)
    for _ in range(3):
        angle = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi
        freq = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * OMEGA
        phase = torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi
        images[:, 0] += torch.cos(freq * (torch.cos(angle) * x + torch.sin(angle) * y) + phase) / 3
    return images


def interior(matrix: torch.Tensor) -> torch.Tensor:
    """(N, SIZE, SIZE) mask of output pixels q with M⁻¹q and q at least MARGIN pixels inside the image."""
    coords = torch.arange(SIZE, dtype=torch.float64) - (SIZE - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    q = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)
    p = q @ torch.linalg.inv(matrix).transpose(1, 2)
    limit = (SIZE - 1) / 2 - MARGIN
    inside = (p[..., :2].abs() <= limit).all(-1) & (q[:, :2].abs() <= limit).all(-1)
    return inside.reshape(-1, SIZE, SIZE)


def filter_allowance() -> float:
    """How far the sym6 up/down pair is from ideal at OMEGA: a quarter-pixel shift and back, measured once."""
    g = torch.Generator().manual_seed(0)
    x = smooth_images(8, g)
    shift = translation(torch.full((8,), 0.25, dtype=torch.float64), torch.zeros(8, dtype=torch.float64))
    back = resample(resample(x, shift), torch.linalg.inv(shift))
    mask = interior(shift).unsqueeze(1)
    return float((back - x).abs()[mask].max())


ALLOWANCE = filter_allowance()


def bound(matrix: torch.Tensor) -> float:
    """Round-trip error bound: bilinear interpolation on the 2× grid (spacing h = 1/2 pixel) errs by at most
    h²/8·max|f''| per warp; the first warp's image has f'' ≤ ‖M‖²·ω² (plane waves of total amplitude 1), the
    second samples it along M⁻¹, so both interpolations see ≤ ‖M‖²·ω²; plus the filters' own deviation."""
    stretch = float(torch.linalg.matrix_norm(matrix[:, :2, :2], ord=2).max())
    return 2 * (0.5**2 / 8) * stretch**2 * OMEGA**2 + 2 * ALLOWANCE


def test_the_filter_allowance_is_small() -> None:
    assert ALLOWANCE < 0.02


GEOMETRY = ["scale", "rotate", "aniso", "xfrac"]


@settings(max_examples=25, deadline=None)
@given(ops=st.sets(st.sampled_from(GEOMETRY), min_size=1), p=st.floats(0.3, 0.9), seed=st.integers(0, 2**16))
def test_a_sampled_transform_then_its_inverse_returns_the_interior(ops: set[str], p: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    draw = sample(6, SIZE, p, {op: 1.0 for op in ops}, Distributions(), generator=g)
    matrix = general_matrix(draw, 6, torch.device("cpu"))
    x = smooth_images(6, g)
    back = resample(resample(x, matrix), torch.linalg.inv(matrix))
    mask = interior(matrix).unsqueeze(1)
    errors = (back - x).abs()[mask]
    assume(mask.float().mean() > 0.05)  # a real part of the image is compared
    assert float(errors.max()) <= bound(matrix)


def test_the_wrong_inverse_fails_the_same_tolerance() -> None:
    g = torch.Generator().manual_seed(1)
    x = smooth_images(4, g)
    matrix = rotation(torch.full((4,), 0.5, dtype=torch.float64)) @ translation(
        torch.full((4,), 1.5, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    wrong = resample(resample(x, matrix), matrix)
    mask = interior(matrix).unsqueeze(1) & interior(matrix @ matrix).unsqueeze(1)
    assert float((wrong - x).abs()[mask].max()) > 5 * bound(matrix)


def test_identity_and_the_wavelet_pair_are_exact() -> None:
    x = torch.rand(3, 3, 40, 40)
    assert torch.allclose(downsample2x(upsample2x(x)), x, atol=1e-6, rtol=0)
    eye = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1)
    assert torch.allclose(resample(x, eye), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shift", [(3, 0), (-2, 5)])
def test_whole_pixel_shifts_through_the_resampler_are_exact_inside(shift: tuple[int, int]) -> None:
    x = torch.rand(2, 3, 24, 24, dtype=torch.float64)
    tx, ty = (torch.full((2,), float(-s), dtype=torch.float64) for s in shift)  # inverse map: read from q − t
    out = resample(x, translation(tx, ty))
    moved = torch.roll(x, shifts=(shift[1], shift[0]), dims=(2, 3))
    inner = (slice(None), slice(None), slice(8, 16), slice(8, 16))
    assert torch.allclose(out[inner], moved[inner], atol=1e-9, rtol=0)


def test_resampled_values_stay_within_the_filters_ringing_bound() -> None:
    # sym6 has negative taps, so up- and downsampling may overshoot: by at most the product of the filters'
    # L1 gains per axis (√2·Σ|f| up, Σ|f|/√2 down, squared for two axes), bilinear weights being convex
    l1 = sum(abs(v) for v in SYM6)
    gain = (l1 * l1) ** 2
    g = torch.Generator().manual_seed(3)
    x = torch.rand(16, 3, 32, 32, generator=g) * 2 - 1
    draw = sample(16, 32, 0.9, {op: 1.0 for op in GEOMETRY}, Distributions(), generator=g)
    out = resample(x, general_matrix(draw, 16, torch.device("cpu")))
    assert float(out.abs().max()) <= gain * float(x.abs().max())
    assert float(out.abs().max()) > 0.5  # and the images were not wiped out
