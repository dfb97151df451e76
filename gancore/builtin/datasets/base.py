"""What every image data set shares: x-flip doubling, labels, batched fetching, resizing and decoding."""

from __future__ import annotations

import math
import os
from abc import abstractmethod
from typing import IO, Annotated, Literal

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from tqdm import tqdm

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
InMemory = Annotated[
    bool,
    Field(
        description="decode every image once when the data set is built and hold them as one uint8 tensor "
        "(N, C, H, W); use it when the decoded images fit in memory (CIFAR-sized, or FFHQ at 64²)"
    ),
]

DECODE_BATCH = 256
"""Images per batch when decoding a whole data set into memory."""
PARALLEL_DECODE_MIN = 1000
"""Fewest images worth starting loader worker processes for when decoding into memory; fewer decode here."""


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

    in_memory = True

    def __init__(self, images: Tensor, labels: Tensor | None, num_classes: int, xflip: bool) -> None:
        self.images = images
        super().__init__(len(images), tuple(images.shape[1:]), labels, num_classes, xflip)

    def _images(self, raw: Tensor) -> Tensor:
        return self.images[raw]


class EncodedImageDataset(ImageDataset):
    """Image files (PNG, JPEG, ...) decoded on demand, so that DataLoader workers share the decoding.

    With ``in_memory`` every image is decoded once when the data set is built into ``decoded``, one uint8
    tensor (N, C, H, W), and fetched from it with a gather. Subclasses say how to open a file by its
    ``name`` and how to name it in error messages.
    """

    def __init__(
        self,
        names: list[str],
        labels: Tensor | None,
        num_classes: int,
        resolution: int | None,
        channels: Literal[1, 3],
        xflip: bool,
        in_memory: bool,
    ) -> None:
        self.names = names
        self.resolution = resolution
        self.channels = channels
        side = resolution if resolution is not None else self._common_side()
        super().__init__(len(names), (channels, side, side), labels, num_classes, xflip)
        self.decoded: Tensor | None = None  # None while _decode_all reads the files through _images
        if in_memory:
            self.decoded = self._decode_all()
        self.in_memory = in_memory

    @abstractmethod
    def _open(self, name: str) -> IO[bytes]:
        """A readable binary file of the image ``name``."""

    @abstractmethod
    def where(self, name: str) -> str:
        """Where the image ``name`` is, as shown to people in error messages."""

    def _images(self, raw: Tensor) -> Tensor:
        if self.decoded is not None:
            return self.decoded[raw]
        return torch.stack([self._decode(self.names[i]) for i in raw.tolist()])

    def _decode_all(self) -> Tensor:
        """Every image decoded into one preallocated uint8 tensor, in loader worker processes when there are many.

        DataError before decoding when the tensor would not fit in the memory available now.
        """
        shape = (self.num_images, *self.image_shape)
        needed = math.prod(shape)
        available = available_memory()
        if available is not None and needed > available:
            raise DataError(
                f"holding the {self.num_images} decoded images of {'×'.join(map(str, self.image_shape))} in memory "
                f"needs {needed / 2**30:.3g} GiB, but only {available / 2**30:.3g} GiB are available; "
                f"set in_memory to false to decode them on demand"
            )
        decoded = torch.empty(shape, dtype=torch.uint8)
        workers = min(8, os.cpu_count() or 1) if self.num_images >= PARALLEL_DECODE_MIN else 0
        loader = torch.utils.data.DataLoader(_DecodeBatches(self, DECODE_BATCH), batch_size=None, num_workers=workers)
        with tqdm(
            total=self.num_images, desc=f"decoding {self.num_images} images into memory", unit="img",
            dynamic_ncols=True, mininterval=1.0,
        ) as bar:
            for k, batch in enumerate(loader):
                if isinstance(batch, DataError):
                    raise batch
                decoded[k * DECODE_BATCH : k * DECODE_BATCH + len(batch)] = batch
                bar.update(len(batch))
        return decoded

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


class _DecodeBatches(torch.utils.data.Dataset):
    """Consecutive batches of an encoded data set's raw images, decoded from their files, for ``_decode_all``.

    A batch holding an unreadable file comes back as its DataError, which the parent raises as it is
    (a worker's exception would reach it wrapped in the worker's traceback).
    """

    def __init__(self, source: EncodedImageDataset, size: int) -> None:
        self.source = source
        self.size = size

    def __len__(self) -> int:
        return -(-self.source.num_images // self.size)

    def __getitem__(self, k: int) -> Tensor | DataError:
        start = k * self.size
        try:
            return self.source._images(torch.arange(start, min(start + self.size, self.source.num_images)))
        except DataError as exc:
            return exc


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have now (Linux's MemAvailable, which counts reclaimable cache),
    else free physical memory from sysconf, or None where the platform cannot say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


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
