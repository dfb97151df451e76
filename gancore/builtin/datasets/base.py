"""What every image data set shares: x-flip doubling, labels, batched fetching, resizing and decoding."""

from __future__ import annotations

from abc import abstractmethod
from typing import IO, Annotated, Literal

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from gancore.errors import DataError
from gancore.interfaces import Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
"""File name endings read as images, compared case-insensitively."""

Resolution = Annotated[
    Annotated[int, Field(gt=0)] | None,
    Field(
        description="side of the square images: an integer centre-crops and LANCZOS-resizes every image; "
        "null keeps the files' own size (all must then be square and of one size)"
    ),
]
Channels = Annotated[Literal[1, 3], Field(description="1 reads images as greyscale (L), 3 as RGB")]
XFlip = Annotated[
    bool, Field(description="double the data set with horizontally mirrored copies (StyleGAN's --mirror)")
]


class ImageDataset(Dataset):
    """Images held by a subclass under raw indices 0..num_images-1, with labels and optional x-flip doubling.

    With ``xflip`` the items ``num_images..2·num_images-1`` are the mirrored copies of the first half.
    """

    def __init__(
        self, num_images: int, image_shape: tuple[int, ...], labels: Tensor | None, num_classes: int, xflip: bool
    ) -> None:
        if labels is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"labels must lie in [0, {num_classes}); found {int(labels.min())}..{int(labels.max())}")
        self.num_images = num_images
        self.image_shape = image_shape
        self.labels = labels
        self.num_classes = num_classes
        self.xflip = xflip

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image_shape

    def __len__(self) -> int:
        return self.num_images * (2 if self.xflip else 1)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        """Fetch many items at once; DataLoader calls this instead of ``__getitem__`` per item."""
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(index) and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"index out of range for a data set of {len(self)} items")
        raw = index % self.num_images
        images = self._images(raw)
        mirrored = index >= self.num_images
        if mirrored.any():
            images[mirrored] = images[mirrored].flip(-1)
        labels = self.labels[raw].tolist() if self.labels is not None else [0] * len(raw)
        return list(zip(images.unbind(), labels, strict=True))

    @abstractmethod
    def _images(self, raw: Tensor) -> Tensor:
        """A new uint8 tensor (N, C, H, W) of the images with raw indices ``raw`` (N,)."""


class TensorImageDataset(ImageDataset):
    """Images held in memory as one uint8 tensor (N, C, H, W), fetched with a single gather per batch."""

    def __init__(self, images: Tensor, labels: Tensor | None, num_classes: int, xflip: bool) -> None:
        self.images = images
        super().__init__(len(images), tuple(images.shape[1:]), labels, num_classes, xflip)

    def _images(self, raw: Tensor) -> Tensor:
        return self.images[raw]


class EncodedImageDataset(ImageDataset):
    """Image files (PNG, JPEG, ...) decoded on demand, so that DataLoader workers share the decoding.

    Subclasses say how to open a file by its ``name`` and how to name it in error messages.
    """

    def __init__(
        self,
        names: list[str],
        labels: Tensor | None,
        num_classes: int,
        resolution: int | None,
        channels: Literal[1, 3],
        xflip: bool,
    ) -> None:
        self.names = names
        self.resolution = resolution
        self.channels = channels
        side = resolution if resolution is not None else self._common_side()
        super().__init__(len(names), (channels, side, side), labels, num_classes, xflip)

    @abstractmethod
    def _open(self, name: str) -> IO[bytes]:
        """A readable binary file of the image ``name``."""

    @abstractmethod
    def where(self, name: str) -> str:
        """Where the image ``name`` is, as shown to people in error messages."""

    def _images(self, raw: Tensor) -> Tensor:
        return torch.stack([self._decode(self.names[i]) for i in raw.tolist()])

    def _decode(self, name: str) -> Tensor:
        try:
            with self._open(name) as file, PIL.Image.open(file) as image:
                return pil_to_tensor(image, self.resolution, self.channels)
        except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read the image {self.where(name)}: {exc}") from exc

    def _common_side(self) -> int:
        """The side shared by all images, read from their headers; DataError at the first that differs."""
        first = ""
        side = 0
        for name in self.names:
            try:
                with self._open(name) as file, PIL.Image.open(file) as image:
                    width, height = image.size
            except (OSError, ValueError, PIL.Image.DecompressionBombError) as exc:
                raise DataError(f"cannot read the image {self.where(name)}: {exc}") from exc
            if not first:
                first, side = name, width
            if width != height or width != side:
                raise DataError(
                    f"{self.where(name)} is {width}×{height}, but with resolution null every image must be square "
                    f"and as large as the first, {self.where(first)} ({side}×{side}); set resolution to an integer "
                    f"to centre-crop and resize them"
                )
        return side


def is_image_name(name: str) -> bool:
    """Whether a file name ends with one of ``IMAGE_SUFFIXES``, in any case."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def pil_to_tensor(image: PIL.Image.Image, resolution: int | None, channels: Literal[1, 3]) -> Tensor:
    """A PIL image as uint8 (C, H, W): converted to L or RGB, then centre-cropped and LANCZOS-resized to resolution."""
    image = image.convert("L" if channels == 1 else "RGB")
    if resolution is not None:
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        if side != resolution:
            image = image.resize((resolution, resolution), PIL.Image.Resampling.LANCZOS)
    array = np.array(image, dtype=np.uint8).reshape(image.height, image.width, channels)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def resize_images(images: Tensor, resolution: int) -> Tensor:
    """Square uint8 images (N, C, H, W) resized to ``resolution`` with antialiased bilinear interpolation."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    resized = F.interpolate(images.float(), size=(resolution, resolution), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)
