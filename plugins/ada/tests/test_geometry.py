"""The one anti-aliased resampling: identity is exact, and a sampled transform followed by its inverse returns
a band-limited image on the interior within a stated interpolation error bound (and the wrong inverse does not)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gancore_ada.geometry import resample, translation
from gancore_ada.pipeline import Distributions, apply, blit_matrix, general_matrix, sample
from gancore_ada.wavelets import DELAY, SYM6, downsample2x, upsample2x

OMEGA = 2 * math.pi / 8  # the test images' highest angular frequency: 1/8 cycle per pixel (1/4 of Nyquist)
MARGIN = 4  # pixels kept away from the borders, where reflection is only approximate
H = 0.5  # bilinear sampling happens on the 2× grid: spacing 1/2 pixel
WAVES = 3
CPU = torch.device("cpu")


def grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred pixel coordinates (y, x) of a size² image: pixel i's centre at i − (size − 1)/2."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    return torch.meshgrid(coords, coords, indexing="ij")


def random_waves(n: int, g: torch.Generator, top: torch.Tensor | float, low: float = 0.0) -> list[tuple]:
    """WAVES plane waves per image: (direction, angular frequency in [low, 1]·top, phase) each (n, 1, 1)."""
    top = torch.as_tensor(top, dtype=torch.float64).reshape(-1, 1, 1).expand(n, 1, 1)
    return [(torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi,
             (low + (1 - low) * torch.rand(n, 1, 1, generator=g, dtype=torch.float64)) * top,
             torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi) for _ in range(WAVES)]


def render(waves: list[tuple], y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n, 1, *y.shape) float64: the sum of the waves at the given coordinates; amplitudes 1/WAVES (total ≤ 1)."""
    out = 0
    for angle, freq, phase in waves:
        out = out + torch.cos(freq * (torch.cos(angle) * x + torch.sin(angle) * y) + phase) / WAVES
    return out.unsqueeze(1)


def interior(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, size, size) mask of output pixels q with q and M⁻¹q at least MARGIN pixels inside the image: the
    round trip resample(resample(x, M), M⁻¹) reads y at M⁻¹q, and y there reads x at q."""
    y, x = grid(size)
    q = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)
    limit = (size - 1) / 2 - MARGIN
    preimage = q @ torch.linalg.inv(matrix).transpose(1, 2)
    inside = (q[:, :2].abs() <= limit).all(-1) & (preimage[..., :2].abs() <= limit).all(-1)
    return inside.reshape(-1, 1, size, size)


def _filter_allowance() -> float:
    """The sym6 pair's deviation from ideal band-limited interpolation at ≤ 1/8 cycle/pixel, measured once with the
    identity placement (no warp): upsample2x against the exact waves on the 2× grid, plus downsample2x of the exact
    waves on the 2× grid against the image. One warp is one up and one down, so this is its filter allowance."""
    size, n = 32, 64
    g = torch.Generator().manual_seed(0)
    waves = random_waves(n, g, OMEGA, low=0.5)  # the deviation grows with frequency: probe the upper half
    y, x = grid(size)
    image = render(waves, y, x)
    u = (torch.arange(2 * size + 10, dtype=torch.float64) - DELAY) / 2 - (size - 1) / 2  # 2× index → coordinate
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    fine = render(waves, yy, xx)
    limit = (size - 1) / 2 - MARGIN
    up = (upsample2x(image) - fine).abs()[:, :, (yy.abs() <= limit) & (xx.abs() <= limit)].max()
    down = (downsample2x(fine) - image).abs()[:, :, (y.abs() <= limit) & (x.abs() <= limit)].max()
    return float(up + down)


ALLOWANCE = _filter_allowance()


def bound(matrix: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
    """(N,) round-trip error bound. Bilinear interpolation with spacing h errs by at most h²/8·max|f''|. Warp 1
    samples x (|x''| ≤ ω², the amplitudes summing to 1); warp 2 samples y = x∘M, whose |y''| ≤ ‖M‖²ω² (‖M‖ the
    largest scale factor of the linear part). Each warp adds the filters' measured allowance, valid because the
    images are drawn with ‖M‖·ω ≤ 1/8 cycle/pixel so that y stays in the measured band too."""
    stretch = torch.linalg.matrix_norm(matrix[:, :2, :2], ord=2)
    return H**2 / 8 * omega**2 * (1 + stretch**2) + 2 * ALLOWANCE


def test_the_filter_allowance_is_small_but_measured() -> None:
    assert 0 < ALLOWANCE < 0.03


GEOMETRY = ["scale", "rotate", "aniso", "xfrac"]
BLITS = ["xflip", "rotate90", "xint"]
N = 4


def round_trip_case(ops: set[str], p: float, seed: int, size: int, low: float = 0.0):  # noqa: ANN201
    g = torch.Generator().manual_seed(seed)
    draw = sample(N, size, p, {op: 1.0 for op in ops}, Distributions(), generator=g)
    # the pipeline's whole inverse map, output → input: the blits' matrix, then the general operations'
    matrix = blit_matrix(draw, N, CPU) @ general_matrix(draw, N, CPU)
    stretch = torch.linalg.matrix_norm(matrix[:, :2, :2], ord=2)
    omega = OMEGA / stretch.clamp(min=1)  # keep y = x∘M within 1/8 cycle/pixel (see bound)
    waves = random_waves(N, g, omega, low)
    x = render(waves, *grid(size))
    top = torch.stack([w[1].view(-1) for w in waves]).max(0).values
    return matrix, x, top


@settings(max_examples=30, deadline=None)
@given(ops=st.sets(st.sampled_from(BLITS + GEOMETRY), min_size=1), p=st.floats(0.3, 0.9),
       seed=st.integers(0, 2**16), size=st.sampled_from([32, 64]))
def test_a_sampled_transform_then_its_inverse_returns_the_interior(ops: set[str], p: float, seed: int,
                                                                   size: int) -> None:
    matrix, x, omega = round_trip_case(ops, p, seed, size)
    back = resample(resample(x, matrix), torch.linalg.inv(matrix))
    mask = interior(matrix, size)
    assume(bool(mask.any()))
    errors = torch.where(mask, (back - x).abs(), torch.zeros_like(x)).flatten(1).max(1).values
    assert bool((errors <= bound(matrix, omega)).all()), (errors, bound(matrix, omega))


@settings(max_examples=20, deadline=None)
@given(ops=st.sets(st.sampled_from(BLITS + GEOMETRY), min_size=1), p=st.floats(0.3, 0.9), seed=st.integers(0, 2**16))
def test_the_wrong_inverse_fails_the_same_tolerance(ops: set[str], p: float, seed: int) -> None:
    size = 64
    matrix, x, omega = round_trip_case(ops, p, seed, size, low=0.5)
    # resample(resample(x, M), M) reads x at M·M·q instead of q: non-trivial where that moves pixels by ≥ 2
    y, xx = grid(size)
    q = torch.stack([xx, y, torch.ones_like(xx)], -1).reshape(-1, 3)
    mask = interior(matrix, size) & interior(torch.linalg.inv(matrix @ matrix), size)
    moved = ((q @ (matrix @ matrix).transpose(1, 2) - q)[..., :2].norm(dim=-1)).reshape(-1, 1, size, size)
    nontrivial = (torch.where(mask, moved, torch.zeros_like(moved)).flatten(1).max(1).values >= 2)
    assume(bool(nontrivial.any()))
    wrong = resample(resample(x, matrix), matrix)
    errors = torch.where(mask, (wrong - x).abs(), torch.zeros_like(x)).flatten(1).max(1).values
    assert bool((errors > bound(matrix, omega))[nontrivial].all()), (errors, bound(matrix, omega))


def test_identity_resampling_returns_the_image() -> None:
    x = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1)
    out = resample(x, eye)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert float((out - x).abs().max()) <= 1e-5


@pytest.mark.parametrize("size", [16, 40, 80])  # both the banded-matrix (≤ 64) and the multiply-add paths
def test_the_wavelet_pair_is_an_exact_inverse(size: int) -> None:
    x = torch.rand(3, 2, size, size, generator=torch.Generator().manual_seed(size))
    big = upsample2x(x)
    assert big.shape[-2:] == (2 * size + 10, 2 * size + 10)
    assert float((downsample2x(big) - x).abs().max()) <= 1e-6


@pytest.mark.parametrize("shift", [(3, 0), (-2, 5), (0, -4)])
def test_whole_pixel_shifts_through_the_resampler_are_exact_inside(shift: tuple[int, int]) -> None:
    size, border = 32, 8
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    tx, ty = (torch.full((2,), float(-s), dtype=torch.float64) for s in shift)  # inverse map: q reads q − t
    out = resample(x, translation(tx, ty))
    moved = torch.roll(x, shifts=(shift[1], shift[0]), dims=(2, 3))
    inner = (slice(None), slice(None), slice(border, size - border), slice(border, size - border))
    assert float((out[inner] - moved[inner]).abs().max()) <= 1e-5
    assert float((out[inner] - x[inner]).abs().max()) > 0.1  # it did move


def ringing_gain() -> float:
    """L∞ gain of one resampling about the middle of the input's range, from the sym6 filters' L1 norms.

    Upsampling: output phase φ on an axis is Σ_k √2·f[2k + φ]·x[…], whose gain is max_φ Σ_k √2·|f[2k + φ]|;
    downsampling: Σ_k f[k]/√2·g[…], gain Σ|f|/√2. Both phases and the down filter sum to 1 (sym6 has a vanishing
    moment), bilinear weights are convex and mirroring moves no value, so constants pass unchanged and x = c + r·u
    (|u| ≤ 1) comes out within c ± r·(up·down)², squared for the two axes."""
    f = [abs(v) for v in SYM6]
    up = max(math.sqrt(2) * sum(f[0::2]), math.sqrt(2) * sum(f[1::2]))
    down = sum(f) / math.sqrt(2)
    return (up * down) ** 2


def test_the_ringing_gain_is_the_filters_and_not_vacuous() -> None:
    assert 1.5 < ringing_gain() < 4  # sym6 has negative taps; (Σ|f|)⁴ ≈ 14 would be a far looser bound


@settings(max_examples=20, deadline=None)
@given(ops=st.sets(st.sampled_from(GEOMETRY), min_size=1), p=st.floats(0.3, 0.95), seed=st.integers(0, 2**16),
       offset=st.floats(-2, 2), channels=st.sampled_from([1, 3]))
def test_geometry_only_output_stays_in_the_input_range_up_to_ringing(ops: set[str], p: float, seed: int,
                                                                      offset: float, channels: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, channels, 24, 24, generator=g) + offset  # range [offset, offset + 1]: mid c, half-width r
    draw = sample(8, 24, p, {op: 1.0 for op in ops}, Distributions(), generator=g)
    out = apply(x, draw)
    lo, hi = x.amin((1, 2, 3)), x.amax((1, 2, 3))
    c, r = (lo + hi) / 2, (hi - lo) / 2
    slack = r * ringing_gain() + 1e-5
    assert bool(((out - c.view(-1, 1, 1, 1)).abs().amax((1, 2, 3)) <= slack).all())
    # a constant image stays that constant (the filters are normalised, the mirroring moves no value)
    flat = torch.full((8, channels, 24, 24), offset + 0.5)
    assert float((apply(flat, draw) - flat).abs().max()) <= 1e-5


def test_resampling_random_images_does_ring_but_within_the_bound() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(16, 3, 32, 32, generator=g)  # [0, 1]: c = 0.5, r = 0.5
    draw = sample(16, 32, 0.9, {op: 1.0 for op in GEOMETRY}, Distributions(), generator=g)
    out = resample(x, general_matrix(draw, 16, CPU))
    assert float((out - 0.5).abs().max()) <= 0.5 * ringing_gain() + 1e-5
    assert float(out.min()) < 0 or float(out.max()) > 1  # white noise does overshoot: the bound is not trivial
    assert float(out.std()) > 0.1  # and the images were not wiped out


def test_images_too_small_to_resample_are_refused_clearly() -> None:
    eye = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    with pytest.raises(ValueError, match=r"at least 6×6 pixels, got 5×5"):
        resample(torch.rand(2, 3, 5, 5), eye)
    assert resample(torch.rand(2, 3, 6, 6), eye).shape == (2, 3, 6, 6)
