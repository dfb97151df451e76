"""The ``ada`` augmenter: ADA's pipeline with a fixed, scheduled or adaptive strength p."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.distributed as dist
from gancore import Augmenter, component
from gancore.schedule import Schedule, Scheduled, within
from pydantic import Field
from torch import Tensor

from gancore_ada.pipeline import OPERATIONS, PRESETS, Distributions, Draw, apply, preset_multipliers, sample

ADAPTIVE_P_MAX = 0.99
"""Adaptive p stays below this: an operation applied with probability q has condition number 1/(1 − q) (ADA,
Appendix C), so p ≤ 0.99 keeps the augmentation invertible with condition number at most 100."""

Multiplier = Annotated[float | None, Field(ge=0, description="probability multiplier; default: 1 if the preset "
                                                              "includes the operation, else 0")]
Preset = Literal[tuple(PRESETS)]  # type: ignore[valid-type] - the presets' names, from their table


def multipliers(preset: str, color_multiplier: float, overrides: dict[str, float | None]) -> dict[str, float]:
    """Each operation's multiplier: the preset's, replaced where given, colour ones scaled by ``color_multiplier``."""
    mult = preset_multipliers(preset)
    mult.update({name: value for name, value in overrides.items() if value is not None})
    return {op.name: mult[op.name] * (color_multiplier if op.group == "color" else 1.0) for op in OPERATIONS}


def leaks(p_max: float, mult: dict[str, float]) -> list[str]:
    """Why a configuration leaks: operations that would be applied to every image at the highest p it reaches."""
    reasons = []
    for op in OPERATIONS:
        if op.certain_leaks and mult[op.name] * p_max >= 1:
            reasons.append(f"{op.name} would be applied to every image (multiplier {mult[op.name]:g} × p up to "
                           f"{p_max:g}); a transform drawn uniformly from a group, or a projection, applied "
                           f"always leaks into the generator (ADA, Appendix C): keep multiplier × p below 1")
    return reasons


def _check(**params: Any) -> None:
    """Refuse configurations that leak, and adaptive p given as a schedule."""
    p: Schedule = params["p"]
    if params["target"] is not None and p.start != p.end:
        raise ValueError("p is adapted from its starting value when target is set; give p as a number, "
                         "not a schedule")
    if max(p.start, p.end) >= 1:
        raise ValueError("p = 1 augments every image, which leaks (ADA, Appendix C); p must stay below 1")
    p_max = ADAPTIVE_P_MAX if params["target"] is not None else max(p.start, p.end)
    overrides = {op.name: params[op.name] for op in OPERATIONS}
    reasons = leaks(p_max, multipliers(params["preset"], params["color_multiplier"], overrides))
    if reasons:
        raise ValueError("; ".join(reasons))


Std = Annotated[float, Field(ge=0)]


@component("augmenter", "ada", check=_check)
class ADA(Augmenter):
    """ADA's non-leaking augmentations (Karras et al. 2020): blit, geometric, colour, filter, noise, cutout.

    Every operation is applied to each image independently with probability p × its multiplier. Geometric
    operations are composed into one matrix and resampled once (reflect padding, 2× sym6 supersampling);
    colour operations into one colour matrix. p is a number, a schedule, or adapted toward ``target``:
    every ``interval`` D steps, p moves by sign(E[sign D(real)] − target) at a speed that crosses 0 → 1 in
    ``adjust_kimg`` thousand images.
    """

    signs: Tensor
    rt: Tensor
    steps: Tensor

    def __init__(
        self,
        preset: Annotated[Preset, Field(description="the groups of operations switched on (authors' presets)")]
        = "bgc",
        p: Annotated[Scheduled, within(ge=0, le=1), Field(description="augmentation strength: a number, a "
                                                                      "schedule, or the start when adaptive")] = 0.0,
        target: Annotated[float | None, Field(gt=0, lt=1, description="adapt p toward this E[sign D(real)] "
                                                                      "(ADA: 0.6); none keeps p as given")] = None,
        adjust_kimg: Annotated[float, Field(gt=0, description="kimg for adaptive p to move by 1")] = 500.0,
        interval: Annotated[int, Field(ge=1, description="D steps between adjustments of adaptive p")] = 4,
        color_multiplier: Annotated[float, Field(ge=0, description="scales the colour operations' multipliers "
                                                                   "(R3GAN: 0.5)")] = 1.0,
        xflip: Multiplier = None, rotate90: Multiplier = None, xint: Multiplier = None,
        scale: Multiplier = None, rotate: Multiplier = None, aniso: Multiplier = None, xfrac: Multiplier = None,
        brightness: Multiplier = None, contrast: Multiplier = None, lumaflip: Multiplier = None,
        hue: Multiplier = None, saturation: Multiplier = None, imgfilter: Multiplier = None,
        noise: Multiplier = None, cutout: Multiplier = None,
        xint_max: Annotated[float, Field(ge=0, le=0.5, description="integer translation: largest shift, a "
                                                                  "fraction of the size")] = 0.125,
        scale_std: Annotated[float, Field(ge=0, description="isotropic scaling: std of log2 of the factor")] = 0.2,
        rotate_max: Annotated[float, Field(ge=0, le=1, description="rotation: largest angle, a fraction of "
                                                                   "π")] = 1.0,
        aniso_std: Annotated[float, Field(ge=0, description="anisotropic scaling: std of log2 of the factor")] = 0.2,
        xfrac_std: Annotated[float, Field(ge=0, description="fractional translation: std, a fraction of the "
                                                            "size")] = 0.125,
        brightness_std: Annotated[float, Field(ge=0, description="brightness: std of the added offset")] = 0.2,
        contrast_std: Annotated[float, Field(ge=0, description="contrast: std of log2 of the gain")] = 0.5,
        hue_max: Annotated[float, Field(ge=0, le=1, description="hue rotation: largest angle, a fraction of π")]
        = 1.0,
        saturation_std: Annotated[float, Field(ge=0, description="saturation: std of log2 of the gain")] = 1.0,
        imgfilter_std: Annotated[float, Field(ge=0, description="band filter: std of log2 of each band's gain")]
        = 1.0,
        imgfilter_bands: Annotated[list[Std], Field(min_length=4, max_length=4, description="band filter: "
                                                    "probability multiplier per band, lowest first")]
        = [1.0, 1.0, 1.0, 1.0],  # noqa: B006 - pydantic copies defaults
        noise_std: Annotated[float, Field(ge=0, description="noise: σ = |N(0, noise_std²)| per image")] = 0.1,
        cutout_size: Annotated[float, Field(gt=0, le=1, description="cutout: side of the square, a fraction of "
                                                                    "the size")] = 0.5,
    ) -> None:
        super().__init__(p(0.0))
        self.schedule = p
        self.target = target
        self.adjust_kimg = adjust_kimg
        self.interval = interval
        overrides = {"xflip": xflip, "rotate90": rotate90, "xint": xint, "scale": scale, "rotate": rotate,
                     "aniso": aniso, "xfrac": xfrac, "brightness": brightness, "contrast": contrast,
                     "lumaflip": lumaflip, "hue": hue, "saturation": saturation, "imgfilter": imgfilter,
                     "noise": noise, "cutout": cutout}
        self.multipliers = multipliers(preset, color_multiplier, overrides)
        self.distributions = Distributions(
            xint_max=xint_max, scale_std=scale_std, rotate_max=rotate_max, aniso_std=aniso_std, xfrac_std=xfrac_std,
            brightness_std=brightness_std, contrast_std=contrast_std, hue_max=hue_max, saturation_std=saturation_std,
            imgfilter_std=imgfilter_std, imgfilter_bands=tuple(imgfilter_bands), noise_std=noise_std,
            cutout_size=cutout_size)
        # adaptive p's statistics since the last adjustment: Σ sign(D(real)) and the count; the last r_t
        self.register_buffer("signs", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("rt", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def sample(self, n: int, size: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> Draw:
        """Draw the parameters of ``n`` images of ``size``² pixels at the current p."""
        return sample(n, size, float(self.p), self.multipliers, self.distributions, device, generator)

    def forward(self, x: Tensor) -> Tensor:
        if float(self.p) == 0:
            return x
        return apply(x, self.sample(len(x), x.shape[-1], x.device))

    def update(self, kimg: float, real_logits: Tensor) -> None:
        """Follow p's schedule, or gather sign(D(real)) and adjust p every ``interval`` D steps."""
        if self.target is None:
            self.p.fill_(self.schedule(kimg))
            return
        self.signs += torch.stack([real_logits.detach().sign().sum().double(),
                                   torch.tensor(float(real_logits.numel()), dtype=torch.float64,
                                                device=real_logits.device)]).to(self.signs.device)
        self.steps += 1
        if int(self.steps) % self.interval:
            return
        totals = self.signs.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(totals)
        rt = totals[0] / totals[1]
        step = torch.sign(rt - self.target) * totals[1] / (self.adjust_kimg * 1000)
        self.p.copy_((self.p + step).clamp(0.0, ADAPTIVE_P_MAX))
        self.rt.fill_(float(rt))
        self.signs.zero_()

    def scalars(self) -> dict[str, float]:
        """p, and for adaptive p the last r_t = E[sign D(real)] once there is one."""
        values = {"p": float(self.p)}
        if self.target is not None and not bool(self.rt.isnan()):  # r_t exists after the first adjustment
            values["rt"] = float(self.rt)
        return values

