"""Geometric augmentation: 3×3 matrices, exact pixel blitting, and one anti-aliased resampling.

Matrices act on pixel coordinates centred on the image (pixel centres at integers minus (size − 1)/2)
and map an output pixel to the input pixel it reads (the inverse transform), so per-image
transforms compose by matrix products in the order the operations are applied.
"""

from __future__ import annotations

import torch
from kornia.geometry.transform import remap
from torch import Tensor

from gancore_ada.wavelets import DELAY, PAD, downsample2x, upsample2x


def translation(tx: Tensor, ty: Tensor) -> Tensor:
    """(N,) offsets → (N, 3, 3) homogeneous translations."""
    m = torch.eye(3, dtype=tx.dtype, device=tx.device).repeat(len(tx), 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scaling(sx: Tensor, sy: Tensor) -> Tensor:
    """(N,) factors → (N, 3, 3) scalings about the centre."""
    m = torch.eye(3, dtype=sx.dtype, device=sx.device).repeat(len(sx), 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotation(theta: Tensor) -> Tensor:
    """(N,) angles in radians → (N, 3, 3) rotations about the centre."""
    m = torch.eye(3, dtype=theta.dtype, device=theta.device).repeat(len(theta), 1, 1)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def reflect_index(i: Tensor, size: int) -> Tensor:
    """Fold coordinates into [0, size − 1] by mirror reflection about the edge pixels' centres (no edge repeat)."""
    if size == 1:
        return torch.zeros_like(i)
    last = size - 1
    if i.numel() and -last <= float(i.min()) and float(i.max()) <= 2 * last:  # one fold: cheaper than remainder
        return last - (last - i.abs()).abs()
    period = 2 * last
    i = torch.remainder(i, period)
    return torch.minimum(i, period - i)


def blit(x: Tensor, matrix: Tensor) -> Tensor:
    """Apply integer-valued inverse matrices (flips, 90° rotations, whole-pixel shifts) exactly, by gathering pixels.

    Pixels read from outside the image are reflected back in, as reflect padding would give.
    ``matrix`` is (N, 3, 3) and must map pixel centres to pixel centres.
    """
    n, c, h, w = x.shape
    if h != w:
        raise ValueError(f"geometric augmentation needs square images, got {h}×{w}")
    centre = (w - 1) / 2
    u = torch.arange(w, device=x.device, dtype=torch.float64) - centre
    m = matrix.to(torch.float64)
    sx, sy = (torch.round(m[:, row, 0].view(n, 1, 1) * u.view(1, 1, w) + m[:, row, 1].view(n, 1, 1) * u.view(1, h, 1)
                          + m[:, row, 2].view(n, 1, 1) + centre).long() for row in (0, 1))
    index = (reflect_index(sy, h) * w + reflect_index(sx, w)).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


def resample(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp each image by its inverse matrix (N, 3, 3) once, anti-aliased: supersample, warp, low-pass, downsample.

    The image is upsampled 2× with the sym6 wavelet (after reflect padding), sampled bilinearly on the 2×
    grid at the positions the matrix gives, where positions outside the image are mirrored back in
    (reflect padding of any width, for free), then low-passed and decimated with the same orthonormal
    filter, so an identity matrix returns the image up to rounding. kornia's ``remap`` does the sampling.
    """
    n, _, h, w = x.shape
    if h != w or w <= PAD:
        raise ValueError(f"geometric augmentation needs square images of at least {PAD + 1}×{PAD + 1} pixels, "
                         f"got {h}×{w}")
    big = upsample2x(x)
    size = big.shape[-1]
    # output 2× index → centred coordinate of the image → inverse transform → input coordinate, mirrored
    # into the image → input 2× index; affine, so computed by broadcasting one row and one column
    centre = (w - 1) / 2
    u = (torch.arange(size, device=x.device, dtype=torch.float64) - DELAY) / 2 - centre
    m = matrix.to(torch.float64)
    maps = []
    for row in (0, 1):
        a, b, c = (m[:, row, k].view(n, 1, 1) for k in range(3))
        src = (a * u.view(1, 1, size)).float() + (b * u.view(1, size, 1) + c + centre).float()
        # the 2× grid already holds the reflect-padded image a few pixels beyond the edges: mirror only beyond it
        # (a 1/64-pixel slack keeps float32 rounding at the very edge from mirroring the outermost samples)
        inside = (src >= -DELAY / 2 - 1 / 64) & (src <= (size - 1 - DELAY) / 2 + 1 / 64)
        src = torch.where(inside, src, reflect_index(src, w))
        maps.append(src.mul_(2).add_(DELAY).to(x.dtype))
    warped = remap(big, maps[0], maps[1], mode="bilinear", padding_mode="border", align_corners=True)
    return downsample2x(warped)
