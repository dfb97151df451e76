"""The filters: sym6 and sym2 as PyWavelets has them, orthonormal; the band filter bank a partition of unity;
kornia's per-image separable filtering as the pipeline uses it."""

from __future__ import annotations

import math

import numpy as np
import pywt
import torch
from kornia.filters import filter2d_separable

from gancore_ada.wavelets import SYM2, SYM6, band_filters


def test_the_filters_are_pywavelets_sym6_and_sym2() -> None:
    assert np.allclose(SYM6, pywt.Wavelet("sym6").dec_lo, atol=1e-12, rtol=0)
    # ours in closed form; the brief allows either orientation (pywt's dec_lo or its reversal, rec_lo)
    sym2 = np.array(pywt.Wavelet("sym2").dec_lo)
    assert np.allclose(SYM2, sym2, atol=1e-12, rtol=0) or np.allclose(SYM2, sym2[::-1], atol=1e-12, rtol=0)
    assert not np.allclose(SYM6, pywt.Wavelet("sym6").dec_lo[::-1], atol=1e-3)  # sym6 is not symmetric: order matters


def test_the_filters_are_orthonormal() -> None:
    for taps in (SYM6, SYM2):
        f = np.array(taps)
        assert math.isclose(f.sum(), math.sqrt(2), abs_tol=1e-10)
        for shift in range(len(f) // 2):
            inner = float(np.dot(f[: len(f) - 2 * shift], f[2 * shift:]))
            assert math.isclose(inner, float(shift == 0), abs_tol=1e-10)


def test_the_bands_split_the_spectrum_into_octaves_and_sum_to_a_delta() -> None:
    bands = band_filters().numpy()
    total = bands.sum(0)
    centre = len(total) // 2
    assert np.allclose(total, np.eye(len(total))[centre], atol=1e-12)
    assert np.allclose(bands, bands[:, ::-1], atol=1e-15)  # zero phase
    response = np.abs(np.fft.rfft(bands, 512, axis=1))  # bins 0 … 256 (Nyquist)
    assert np.allclose(response[:, 0], [1, 0, 0, 0], atol=1e-12)  # DC only in the lowest band
    assert np.allclose(response[:, 256], [0, 0, 0, 1], atol=1e-12)  # Nyquist only in the highest
    # each band peaks in its own octave: lowest below π/8, then π/8–π/4, π/4–π/2, π/2–π
    peaks = response.argmax(1) / 256
    assert peaks[0] < 1 / 8 and 1 / 8 <= peaks[1] <= 1 / 4 and 1 / 4 <= peaks[2] <= 1 / 2 and peaks[3] >= 1 / 2


def test_kornia_filters_each_image_with_its_own_kernel() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 12, 12, generator=g)
    taps = torch.rand(3, 7, generator=g)
    together = filter2d_separable(x, taps, taps, border_type="reflect")
    for i in range(3):
        alone = filter2d_separable(x[i:i + 1], taps[i:i + 1], taps[i:i + 1], border_type="reflect")
        assert torch.allclose(together[i], alone[0], atol=1e-6)
    assert not torch.allclose(together[0], filter2d_separable(x[:1], taps[1:2], taps[1:2])[0], atol=1e-3)


def test_reflect_padding_matches_torch_and_goes_beyond_it() -> None:
    from torch.nn import functional as F

    from gancore_ada.pipeline import reflect_pad

    x = torch.rand(2, 3, 9, 9)
    assert torch.equal(reflect_pad(x, 4), F.pad(x, (4, 4, 4, 4), mode="reflect"))
    wide = reflect_pad(x, 21)  # wider than the image: mirrored again, period 2·(9 − 1)
    assert wide.shape[-1] == 9 + 42
    assert torch.equal(wide[..., 21, 21 - 16], x[..., 0, 0]) and torch.equal(wide[..., 21, 21 + 16], x[..., 0, 0])
