"""Wavelet filters for anti-aliased resampling (sym6) and the band image filter (sym2).

kornia has no wavelet filters and no polyphase (strided) up/down-sampling, so both are
written here with plain convolutions; the per-image band filtering uses kornia's filters.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
"""Daubechies' least-asymmetric wavelet with 6 vanishing moments: the 12-tap orthonormal low-pass (sum √2)."""

SYM2 = ((1 - math.sqrt(3)) / (4 * math.sqrt(2)), (3 - math.sqrt(3)) / (4 * math.sqrt(2)),
        (3 + math.sqrt(3)) / (4 * math.sqrt(2)), (1 + math.sqrt(3)) / (4 * math.sqrt(2)))
"""The 4-tap orthonormal low-pass with 2 vanishing moments (sym2 = db2), in closed form."""

PAD = (len(SYM6) - 2) // 2
"""Reflect padding each side of an image before 2× upsampling, so the 2× grid covers what downsampling reads."""

DELAY = sum(k * f for k, f in enumerate(SYM6)) / sum(SYM6)
"""Where sample i of an image lands on the 2× grid: at index 2·i + DELAY (the filter's centroid)."""


_UP = tuple(v * math.sqrt(2) for v in SYM6)
_DOWN = tuple(v / math.sqrt(2) for v in SYM6)


def _up(x: Tensor, dim: int) -> Tensor:
    """Upsample axis ``dim`` (−1 or −2, padded by PAD) 2× with √2·sym6: n samples → 2·(n − 5).

    Polyphase: output 2m + φ = Σ_k x[m + 5 − k]·f[2k + φ]; written as shifted multiply-adds, which beat
    one-channel convolutions on CPUs.
    """
    n = x.shape[dim]
    length = n - 5
    phases = []
    for phase in (0, 1):
        acc = x.narrow(dim, 5, length) * _UP[phase]
        for k in range(1, 6):
            acc.add_(x.narrow(dim, 5 - k, length), alpha=_UP[2 * k + phase])
        phases.append(acc)
    if dim == -1:  # interleave the phases: as a complex tensor's real and imaginary parts, 3× faster than stack
        return torch.view_as_real(torch.complex(*phases)).flatten(-2, -1)
    return torch.stack(phases, -2).flatten(-3, -2)


def _down(x: Tensor, dim: int) -> Tensor:
    """Low-pass axis ``dim`` with sym6/√2 and keep every other sample: 2·m + 10 samples → m."""
    m = (x.shape[dim] - 10) // 2
    taps = [x[..., k:k + 2 * m - 1:2] if dim == -1 else x[..., k:k + 2 * m - 1:2, :] for k in range(12)]
    out = taps[0] * _DOWN[0]
    for k in range(1, 12):
        out.add_(taps[k], alpha=_DOWN[k])
    return out


MATMUL_MAX_SIZE = 64
"""Up to this size the filters run as products with banded matrices (faster there); above, as multiply-adds."""


@functools.lru_cache(maxsize=16)
def _matrices(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """The same filters as matrices along one axis: up (n + 10, 2n + 10) from the padded axis, down (2n + 10, n)."""
    up = torch.zeros(n + 10, 2 * n + 10, dtype=torch.float64)
    down = torch.zeros(2 * n + 10, n, dtype=torch.float64)
    for k in range(12):  # output 2m + φ reads padded input m + 5 − j with tap 2j + φ, k = 2j + φ
        m = torch.arange(n + 5)
        up[m + 5 - k // 2, 2 * m + k % 2] = _UP[k]
        down[2 * torch.arange(n) + k, torch.arange(n)] = _DOWN[k]
    return up.to(device, dtype), down.to(device, dtype)


def upsample2x(x: Tensor) -> Tensor:
    """(N, C, H, W) → (N, C, 2H + 10, 2W + 10): reflect-pad by PAD, then upsample with sym6 along both axes.

    Sample (i, j) of ``x`` lands at 2× index (2i + DELAY, 2j + DELAY); ``downsample2x`` inverts it exactly
    (sym6 is orthonormal), so only what happens on the 2× grid in between changes the image.
    """
    x = F.pad(x, (PAD, PAD, PAD, PAD), mode="reflect")
    n = x.shape[-1] - 2 * PAD
    if n <= MATMUL_MAX_SIZE and x.shape[-2] == x.shape[-1]:
        up, _ = _matrices(n, x.dtype, x.device)
        return up.T @ x @ up
    return _up(_up(x, -2), -1)


def downsample2x(x: Tensor) -> Tensor:
    """(N, C, 2H + 10, 2W + 10) → (N, C, H, W): the anti-aliasing low-pass and decimation that undo ``upsample2x``."""
    n = (x.shape[-1] - 10) // 2
    if n <= MATMUL_MAX_SIZE and x.shape[-2] == x.shape[-1]:
        _, down = _matrices(n, x.dtype, x.device)
        return down.T @ x @ down
    return _down(_down(x, -1), -2)


def _autocorrelation_half(h: tuple[float, ...]) -> np.ndarray:
    """|H(ω)|²/2 as zero-phase taps: the low-pass half of a partition of unity (high-pass = δ − it)."""
    return np.correlate(h, h, mode="full") / 2


def _dilate(taps: np.ndarray, factor: int) -> np.ndarray:
    out = np.zeros((len(taps) - 1) * factor + 1)
    out[::factor] = taps
    return out


def _centred(taps: np.ndarray, length: int) -> np.ndarray:
    pad = (length - len(taps)) // 2
    return np.pad(taps, (pad, pad))


def band_filters(bands: int = 4) -> Tensor:
    """Zero-phase 1-D filters splitting a signal into ``bands`` octave bands, lowest first; they sum to δ.

    Built as an undecimated sym2 wavelet decomposition: with L(ω) = |H(ω)|²/2 and its complement
    1 − L(ω), band b < bands − 1 is L(ω)…L(2^(k−1)ω)·(1 − L(2^k ω)) for k = bands − 1 − b, and the lowest
    band is the product of all the low-passes. Shape (bands, taps), float64.
    """
    low = _autocorrelation_half(SYM2)
    delta = np.zeros_like(low)
    delta[len(low) // 2] = 1
    high = delta - low
    filters, through = [], np.array([1.0])  # the low-passes of the finer levels, applied so far
    for level in range(bands - 1):
        filters.append(np.convolve(through, _dilate(high, 2 ** level)))
        through = np.convolve(through, _dilate(low, 2 ** level))
    filters.append(through)
    length = max(len(f) for f in filters)
    return torch.tensor(np.stack([_centred(f, length) for f in reversed(filters)]))
