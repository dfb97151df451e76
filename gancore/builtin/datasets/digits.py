"""scikit-learn's bundled 8×8 handwritten digits, and RGB triplets of them: image data sets that need no download."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from gancore.builtin.datasets.base import ImageDataset, TensorImageDataset, XFlip, resize_images
from gancore.components import component

DigitResolution = Annotated[
    int, Field(gt=0, description="side of the images; other than 8 resizes with antialiased bilinear interpolation")
]


def digit_images(resolution: int) -> tuple[Tensor, Tensor]:
    """The 1797 digits as uint8 (1797, 1, resolution, resolution), 0..16 scaled to 0..255, and their classes (1797,)."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn takes seconds to import

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).mul(255 / 16).round().to(torch.uint8).unsqueeze(1)
    return resize_images(images, resolution), torch.from_numpy(bunch.target).long()


@component("dataset", "digits")
def digits(resolution: DigitResolution = 8, xflip: XFlip = False) -> TensorImageDataset:
    """scikit-learn's 1797 handwritten 8×8 digits (UCI optdigits test set), greyscale, 10 classes."""
    images, classes = digit_images(resolution)
    return TensorImageDataset(images, classes, 10, xflip)


@component("dataset", "stacked_digits")
class StackedDigits(ImageDataset):
    """Three random sklearn digits stacked as the R, G, B channels: 1000 modes, a small StackedMNIST, unconditional.

    ``modes`` (size,) holds each item's mode d_R·100 + d_G·10 + d_B, for mode-coverage metrics.
    Items are composed on demand from ``triplets`` (size, 3), indices into ``digits`` (1797, 1, R, R).
    """

    def __init__(
        self,
        size: Annotated[int, Field(gt=0, description="number of digit triplets, drawn once")] = 50_000,
        resolution: DigitResolution = 8,
        seed: int = 0,
    ) -> None:
        self.digits, classes = digit_images(resolution)
        generator = torch.Generator().manual_seed(seed)
        self.triplets = torch.randint(len(self.digits), (size, 3), generator=generator)
        self.modes = (classes[self.triplets] * torch.tensor([100, 10, 1])).sum(1)
        super().__init__(size, (3, resolution, resolution), None, 0, False)

    def _images(self, raw: Tensor) -> Tensor:
        return self.digits[self.triplets[raw]].squeeze(2)
