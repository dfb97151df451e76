"""ADA's augmentation pipeline (Karras et al. 2020): the operations, their distributions, sampling and application.

Each operation draws, per image, a parameter from its distribution and is applied with probability
p × its multiplier, independently per image and per operation; otherwise its parameter is the identity.
Geometric operations are composed into one matrix per image and the image is resampled once; colour
operations are composed into one 4×4 colour matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from kornia.filters import filter2d_separable
from kornia.geometry.conversions import axis_angle_to_rotation_matrix
from torch import Tensor

from gancore_ada.geometry import blit, reflect_index, resample, rotation, scaling, translation
from gancore_ada.wavelets import band_filters


@dataclass(frozen=True)
class Operation:
    """One augmentation. ``certain_leaks``: applied to every image it is a uniform choice over a group
    (or a projection), whose distribution transform is not invertible, so it must stay below probability 1."""

    name: str
    group: str
    certain_leaks: bool
    description: str


OPERATIONS: tuple[Operation, ...] = (
    Operation("xflip", "blit", True, "mirror horizontally (i ∈ {0, 1} uniform)"),
    Operation("rotate90", "blit", True, "rotate by k·90° (k ∈ {0, 1, 2, 3} uniform)"),
    Operation("xint", "blit", True, "translate by whole pixels, U(−xint_max, xint_max) of the size per axis"),
    Operation("scale", "geom", False, "scale isotropically by 2^N(0, scale_std²)"),
    Operation("rotate", "geom", True, "rotate by U(−π, π)·rotate_max, before and after the anisotropic scaling"),
    Operation("aniso", "geom", False, "scale by (s, 1/s), s = 2^N(0, aniso_std²)"),
    Operation("xfrac", "geom", False, "translate by N(0, xfrac_std²) of the size per axis"),
    Operation("brightness", "color", False, "add N(0, brightness_std²) to every channel"),
    Operation("contrast", "color", False, "multiply by 2^N(0, contrast_std²)"),
    Operation("lumaflip", "color", True, "reflect colours through the plane orthogonal to the luma axis (i ∈ {0, 1})"),
    Operation("hue", "color", True, "rotate colours about the luma axis by U(−π, π)·hue_max (RGB)"),
    Operation("saturation", "color", False, "scale colours away from the luma axis by 2^N(0, saturation_std²) (RGB)"),
    Operation("imgfilter", "filter", False, "amplify or attenuate 4 frequency bands by 2^N(0, imgfilter_std²)"),
    Operation("noise", "noise", False, "add Gaussian noise of standard deviation |N(0, noise_std²)|"),
    Operation("cutout", "cutout", True, "zero a square of side cutout_size·size at a uniform centre"),
)

PRESETS: dict[str, tuple[str, ...]] = {
    "blit": ("blit",), "geom": ("geom",), "color": ("color",), "filter": ("filter",), "noise": ("noise",),
    "cutout": ("cutout",), "bg": ("blit", "geom"), "bgc": ("blit", "geom", "color"),
    "bgcf": ("blit", "geom", "color", "filter"), "bgcfn": ("blit", "geom", "color", "filter", "noise"),
    "bgcfnc": ("blit", "geom", "color", "filter", "noise", "cutout"),
}
"""The authors' presets: which groups of operations they switch on (each with multiplier 1)."""


def preset_multipliers(preset: str) -> dict[str, float]:
    """Every operation's multiplier under ``preset``: 1 for the groups it names, else 0."""
    groups = PRESETS[preset]
    return {op.name: float(op.group in groups) for op in OPERATIONS}


@dataclass(frozen=True)
class Distributions:
    """The operations' parameter distributions; the defaults are the ADA paper's."""

    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0
    imgfilter_std: float = 1.0
    imgfilter_bands: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    noise_std: float = 0.1
    cutout_size: float = 0.5


IDENTITY = {"xflip": 0.0, "rotate90": 0.0, "xint": 0.0, "scale": 1.0, "rotate": 0.0, "aniso": 1.0, "xfrac": 0.0,
            "brightness": 0.0, "contrast": 1.0, "lumaflip": 0.0, "hue": 0.0, "saturation": 1.0, "imgfilter": 1.0,
            "noise": 0.0, "cutout": 0.0}
"""Each operation's parameter value that leaves an image unchanged."""

BANDS = band_filters()
"""The image filter's four octave bands, lowest first, as 1-D taps (float64)."""

BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)
"""Expected power of the four bands, lowest first, that the band gains are normalised to keep (ADA)."""


@dataclass
class Draw:
    """The parameters sampled for one batch: ``values[op]`` per image (identity where not applied) and
    ``applied[op]``, a bool mask of the same leading shape. Shapes: xint, xfrac (N, 2) in pixels; rotate (N, 2),
    before and after the anisotropic scaling; imgfilter (N, 4) band gains; cutout (N, 2) centres in [0, 1];
    the others (N,). Only operations with a non-zero multiplier appear."""

    size: int
    dist: Distributions
    values: dict[str, Tensor] = field(default_factory=dict)
    applied: dict[str, Tensor] = field(default_factory=dict)

    def any_applied(self, group: str) -> Tensor | None:
        """(N,) mask of images that some operation of ``group`` changes, or None when the group is off."""
        masks = [self.applied[op.name].reshape(len(self.applied[op.name]), -1).any(1)
                 for op in OPERATIONS if op.group == group and op.name in self.applied]
        return torch.stack(masks).any(0) if masks else None


def sample(n: int, size: int, p: float, multipliers: dict[str, float], dist: Distributions,
           device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> Draw:
    """Draw every switched-on operation's parameter for ``n`` images of ``size``² pixels at strength ``p``."""

    def uniform(*shape: int) -> Tensor:
        return torch.rand(n, *shape, device=device, generator=generator, dtype=torch.float64)

    def normal(*shape: int) -> Tensor:
        return torch.randn(n, *shape, device=device, generator=generator, dtype=torch.float64)

    draws = {  # each operation's parameter, for every image
        "xflip": lambda: torch.floor(uniform() * 2),
        "rotate90": lambda: torch.floor(uniform() * 4),
        "xint": lambda: torch.round((uniform(2) * 2 - 1) * dist.xint_max * size),
        "scale": lambda: torch.exp2(normal() * dist.scale_std),
        "rotate": lambda: (uniform(2) * 2 - 1) * math.pi * dist.rotate_max,
        "aniso": lambda: torch.exp2(normal() * dist.aniso_std),
        "xfrac": lambda: normal(2) * dist.xfrac_std * size,
        "brightness": lambda: normal() * dist.brightness_std,
        "contrast": lambda: torch.exp2(normal() * dist.contrast_std),
        "lumaflip": lambda: torch.floor(uniform() * 2),
        "hue": lambda: (uniform() * 2 - 1) * math.pi * dist.hue_max,
        "saturation": lambda: torch.exp2(normal() * dist.saturation_std),
        "imgfilter": lambda: torch.exp2(normal(4) * dist.imgfilter_std),
        "noise": lambda: normal().abs() * dist.noise_std,
        "cutout": lambda: uniform(2),
    }
    draw = Draw(size, dist)
    for op in OPERATIONS:
        mult = multipliers.get(op.name, 0.0)
        if mult <= 0:
            continue
        value = draws[op.name]()
        prob = torch.tensor([min(p * mult, 1.0)], dtype=torch.float64, device=device)
        if op.name == "rotate":
            # before and after the anisotropic scaling, each with the probability that makes
            # "before or after" happen with probability p × multiplier
            prob = 1 - torch.sqrt((1 - prob).clamp(min=0))
            prob = prob.expand(2)
        elif op.name == "imgfilter":
            prob = (prob * torch.tensor(dist.imgfilter_bands, dtype=torch.float64, device=device)).clamp(max=1)
        chosen = uniform(len(prob)) < prob  # one decision per image, or per rotation / band
        applied = chosen if value.dim() == 2 and len(prob) > 1 else chosen[:, 0]
        mask = applied.view(n, -1) if value.dim() == 2 else applied
        draw.values[op.name] = torch.where(mask, value, torch.full_like(value, IDENTITY[op.name]))
        draw.applied[op.name] = applied
    return draw


def blit_matrix(draw: Draw, n: int, device: torch.device) -> Tensor:
    """(N, 3, 3) inverse matrices of the pixel-blitting operations: x-flip, then 90° rotation, then integer shift."""
    v = draw.values
    m = torch.eye(3, dtype=torch.float64, device=device).repeat(n, 1, 1)
    if "xflip" in v:
        m = m @ scaling(1 - 2 * v["xflip"], torch.ones_like(v["xflip"]))
    if "rotate90" in v:
        m = m @ rotation(-math.pi / 2 * v["rotate90"])
    if "xint" in v:
        m = m @ translation(-v["xint"][:, 0], -v["xint"][:, 1])
    return m


def general_matrix(draw: Draw, n: int, device: torch.device) -> Tensor:
    """(N, 3, 3) inverse matrices of the general geometric operations, in the order they act on the image:
    isotropic scaling, rotation, anisotropic scaling, rotation, fractional translation."""
    v = draw.values
    m = torch.eye(3, dtype=torch.float64, device=device).repeat(n, 1, 1)
    if "scale" in v:
        m = m @ scaling(1 / v["scale"], 1 / v["scale"])
    if "rotate" in v:
        m = m @ rotation(-v["rotate"][:, 0])
    if "aniso" in v:
        m = m @ scaling(1 / v["aniso"], v["aniso"])
    if "rotate" in v:
        m = m @ rotation(-v["rotate"][:, 1])
    if "xfrac" in v:
        m = m @ translation(-v["xfrac"][:, 0], -v["xfrac"][:, 1])
    return m


LUMA = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / math.sqrt(3)
"""The luma axis of RGB, about which hue rotates and along which lumaflip reflects."""


def color_matrix(draw: Draw, n: int, device: torch.device) -> Tensor:
    """(N, 4, 4) homogeneous colour matrices: brightness, then contrast, lumaflip, hue, saturation."""
    v = draw.values
    m = torch.eye(4, dtype=torch.float64, device=device).repeat(n, 1, 1)
    luma = LUMA.to(device)
    vvt = torch.zeros(4, 4, dtype=torch.float64, device=device)
    vvt[:3, :3] = torch.outer(luma, luma)
    eye = torch.eye(4, dtype=torch.float64, device=device)
    if "brightness" in v:
        shift = eye.repeat(n, 1, 1)
        shift[:, :3, 3] = v["brightness"].unsqueeze(1)
        m = shift @ m
    if "contrast" in v:
        gain = eye.repeat(n, 1, 1)
        gain[:, :3, :3] *= v["contrast"].view(n, 1, 1)
        m = gain @ m
    if "lumaflip" in v:
        m = (eye - 2 * vvt * v["lumaflip"].view(n, 1, 1)) @ m
    if "hue" in v:
        turn = eye.repeat(n, 1, 1)
        # kornia's Rodrigues formula: rotation about the luma axis by the drawn angle
        turn[:, :3, :3] = axis_angle_to_rotation_matrix(luma * v["hue"].unsqueeze(1))
        m = turn @ m
    if "saturation" in v:
        chroma = eye - vvt
        chroma[3, 3] = 0  # the homogeneous coordinate is not a colour
        m = (eye - chroma + chroma * v["saturation"].view(n, 1, 1)) @ m
    return m


def _on(mask: Tensor | None, x: Tensor, fn) -> Tensor:  # noqa: ANN001 - a Tensor → Tensor function
    """Apply ``fn`` to the images of ``x`` that ``mask`` selects, keeping the others as they are."""
    if mask is None or not bool(mask.any()):
        return x
    if bool(mask.all()):
        return fn(x, slice(None))
    index = mask.nonzero().squeeze(1)
    return x.index_copy(0, index, fn(x.index_select(0, index), index))


def apply(x: Tensor, draw: Draw, generator: torch.Generator | None = None) -> Tensor:
    """Augment images (N, C, H, W) with the drawn parameters: geometry, colour, band filter, noise, cutout.

    Computes in float32 for half-precision inputs (resampling positions need it) and returns ``x``'s dtype.
    """
    out = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    n, channels, h, w = out.shape
    dev = out.device
    blits, warps = draw.any_applied("blit"), draw.any_applied("geom")
    if blits is not None:
        matrix = blit_matrix(draw, n, dev)
        out = _on(blits, out, lambda imgs, i: blit(imgs, matrix[i]))
    if warps is not None:
        matrix = general_matrix(draw, n, dev)
        out = _on(warps, out, lambda imgs, i: resample(imgs, matrix[i]))
    colours = draw.any_applied("color")
    if colours is not None:
        cm = color_matrix(draw, n, dev).to(out.dtype)
        out = _on(colours, out, lambda imgs, i: _recolour(imgs, cm[i]))
    filters = draw.any_applied("filter")
    if filters is not None:
        gains = draw.values["imgfilter"]
        power = torch.tensor(BAND_POWER, dtype=torch.float64, device=dev)
        gains = gains / (gains.square() * power).sum(1, keepdim=True).sqrt()
        taps = (gains @ BANDS.to(dev)).to(out.dtype)
        out = _on(filters, out, lambda imgs, i: filter2d_separable(
            reflect_pad(imgs, taps.shape[1] // 2), taps[i], taps[i], padding="valid"))
    noisy = draw.any_applied("noise")
    if noisy is not None:
        sigma = draw.values["noise"].to(out.dtype)
        out = _on(noisy, out, lambda imgs, i: imgs + torch.randn(
            imgs.shape, generator=generator, device=dev, dtype=imgs.dtype) * sigma[i].view(-1, 1, 1, 1))
    cut = draw.any_applied("cutout")
    if cut is not None:
        side = draw.dist.cutout_size
        out = _on(cut, out, lambda imgs, i: imgs * cutout_mask(draw.values["cutout"][i], h, w, side).to(imgs.dtype))
    return out.to(x.dtype)


def reflect_pad(x: Tensor, pad: int) -> Tensor:
    """Mirror-pad the last two axes by ``pad``, which may exceed the image (torch's reflect padding cannot)."""
    rows = reflect_index(torch.arange(-pad, x.shape[-2] + pad, device=x.device), x.shape[-2])
    cols = reflect_index(torch.arange(-pad, x.shape[-1] + pad, device=x.device), x.shape[-1])
    return x.index_select(-2, rows).index_select(-1, cols)


def _recolour(x: Tensor, matrix: Tensor) -> Tensor:
    """RGB' = C[:3, :3]·RGB + C[:3, 3]; a single channel uses the mean of the first three rows."""
    if x.shape[1] == 3:
        return torch.einsum("nij,njhw->nihw", matrix[:, :3, :3], x) + matrix[:, :3, 3, None, None]
    gain = matrix[:, :3, :3].sum(2).mean(1)
    offset = matrix[:, :3, 3].mean(1)
    return x * gain.view(-1, 1, 1, 1) + offset.view(-1, 1, 1, 1)


def cutout_mask(centres: Tensor, h: int, w: int, side: float) -> Tensor:
    """(N, 1, H, W) masks, 0 where a pixel's centre lies inside the image's square of ``side`` (a fraction of
    the size) centred at ``centres`` (N, 2) in [0, 1], else 1."""
    ys = (torch.arange(h, device=centres.device, dtype=centres.dtype) + 0.5) / h
    xs = (torch.arange(w, device=centres.device, dtype=centres.dtype) + 0.5) / w
    inside_x = (xs.view(1, 1, w) - centres[:, 0].view(-1, 1, 1)).abs() < side / 2
    inside_y = (ys.view(1, h, 1) - centres[:, 1].view(-1, 1, 1)).abs() < side / 2
    return (~(inside_x & inside_y)).unsqueeze(1).float()
