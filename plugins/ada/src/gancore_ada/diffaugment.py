"""``diffaugment``: DiffAugment (Zhao et al. 2020), for comparison with ADA.

Every image gets every policy's transform (p = 1 by default): colour (brightness, saturation, contrast),
translation by up to 1/8 of the size with zero padding, cutout of a square of half the size.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from gancore import Augmenter, component
from pydantic import Field
from torch import Tensor

from gancore_ada.pipeline import cutout_mask

Policy = Literal["color", "translation", "cutout"]


def _check(policy: list[str], **_: object) -> None:
    """Each transform at most once."""
    if len(set(policy)) != len(policy):
        raise ValueError(f"policy {policy} names a transform twice; name each of color, translation, cutout once")


@component("augmenter", "diffaugment", check=_check)
class DiffAugment(Augmenter):
    """DiffAugment (Zhao et al. 2020): colour, translation and cutout on every image, for comparison with ADA.

    Applied to every image by default (p = 1), as the paper does; it leaks by ADA's criterion, which is the point
    of comparing. With p < 1 each image is augmented with probability p and passed through untouched otherwise.
    """

    def __init__(
        self,
        policy: Annotated[list[Policy], Field(min_length=1, description="transforms, in order")]
        = ["color", "translation", "cutout"],  # noqa: B006 - pydantic copies defaults
        translation_ratio: Annotated[float, Field(gt=0, le=0.5, description="largest shift, a fraction of the "
                                                                            "size")] = 0.125,
        cutout_ratio: Annotated[float, Field(gt=0, le=1, description="side of the cut square, a fraction of "
                                                                     "the size")] = 0.5,
        p: Annotated[float, Field(ge=0, le=1, description="probability that an image is augmented (the paper: 1)")]
        = 1.0,
    ) -> None:
        super().__init__(p)
        self.policy = list(policy)
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio

    def forward(self, x: Tensor) -> Tensor:
        p = float(self.p)
        if p == 0:
            return x
        y = x
        for name in self.policy:
            y = {"color": self.color, "translation": self.translation, "cutout": self.cutout}[name](y)
        if p == 1:
            return y
        chosen = torch.rand(len(x), device=x.device) < p
        return torch.where(chosen.view(-1, *([1] * (x.dim() - 1))), y, x)

    @staticmethod
    def color(x: Tensor) -> Tensor:
        """Brightness + U(−0.5, 0.5); saturation × U(0, 2) about the pixel's channel mean; contrast × U(0.5, 1.5)
        about the image mean."""
        n = len(x)
        x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean

    def translation(self, x: Tensor) -> Tensor:
        """Shift each image by whole pixels, up to ``translation_ratio`` of its size per axis; zeros come in."""
        n, c, h, w = x.shape
        limit = torch.tensor([w, h], device=x.device) * self.translation_ratio
        shift = torch.round((torch.rand(n, 2, device=x.device) * 2 - 1) * limit).long()
        ys = torch.arange(h, device=x.device).view(1, h, 1) - shift[:, 1].view(n, 1, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w) - shift[:, 0].view(n, 1, 1)
        valid = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)
        index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
        moved = x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)
        return moved * valid.to(x.dtype)

    def cutout(self, x: Tensor) -> Tensor:
        """Zero a square of side ``cutout_ratio`` of the size at a uniform position in each image."""
        n, _, h, w = x.shape
        centres = torch.rand(n, 2, device=x.device, dtype=torch.float64)
        return x * cutout_mask(centres, h, w, self.cutout_ratio).to(x.dtype)
