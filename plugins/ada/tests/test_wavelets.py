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


def normalised_gains(gains: torch.Tensor) -> torch.Tensor:
    """ADA's rule: band gains scaled so the expected power (10, 1, 1, 1)/13 of the bands, lowest first, is kept."""
    power = torch.tensor([10, 1, 1, 1], dtype=torch.float64) / 13
    return gains / (gains.square() * power).sum(1, keepdim=True).sqrt()


def test_the_band_filter_as_the_pipeline_applies_it_matches_a_convolution_per_image() -> None:
    from torch.nn import functional as F

    from gancore_ada.pipeline import Distributions, apply, sample

    n, size = 8, 24  # larger than the 21-pixel half-support, so torch's own reflect padding can do the padding
    draw = sample(n, size, 0.25, {"imgfilter": 1.0}, Distributions(), generator=torch.Generator().manual_seed(1))
    applied = draw.applied["imgfilter"].any(1)
    assert bool(applied.any()) and bool((~applied).any())
    x = torch.rand(n, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = apply(x, draw)
    taps = normalised_gains(draw.values["imgfilter"]) @ band_filters()
    half = taps.shape[1] // 2
    for i in range(n):
        if not applied[i]:
            assert torch.equal(out[i], x[i])
            continue
        kernel = torch.outer(taps[i], taps[i]).expand(3, 1, -1, -1)
        expected = F.conv2d(F.pad(x[i:i + 1], (half,) * 4, mode="reflect"), kernel, groups=3)[0]
        assert torch.allclose(out[i], expected, atol=1e-10)


def test_band_gains_act_on_dc_and_nyquist_as_normalised() -> None:
    from gancore_ada.pipeline import Distributions, apply, sample

    n, size = 16, 16
    draw = sample(n, size, 0.9, {"imgfilter": 1.0}, Distributions(), generator=torch.Generator().manual_seed(3))
    gains = normalised_gains(draw.values["imgfilter"])
    kept = (gains.square() * torch.tensor([10, 1, 1, 1]) / 13).sum(1)
    assert torch.allclose(kept, torch.ones(n, dtype=torch.float64))
    flat = torch.full((n, 1, size, size), 0.7, dtype=torch.float64)
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    checker = ((-1.0) ** (i + j)).to(torch.float64).expand(n, 1, size, size)
    # the lowest band alone passes DC and the highest alone Nyquist (gain 1 per axis), so the separable 2-D filter
    # scales a constant by g₀² and a checkerboard by g₃² (as the authors, filtering along x then y); reflection
    # padding keeps both patterns
    assert torch.allclose(apply(flat, draw), flat * gains[:, 0].square().view(-1, 1, 1, 1), atol=1e-10)
    assert torch.allclose(apply(checker, draw), checker * gains[:, 3].square().view(-1, 1, 1, 1), atol=1e-10)
    assert not torch.allclose(gains[:, 0], gains[:, 3])  # the two checks see different gains
