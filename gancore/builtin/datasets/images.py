"""Image files from a folder or from a StyleGAN-style dataset zip, decoded on demand or once into memory."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import IO, Annotated, Any

import torch
from pydantic import Field
from torch import Tensor

from gancore.builtin.datasets.base import (
    IMAGE_SUFFIXES,
    Channels,
    EncodedImageDataset,
    InMemory,
    Resolution,
    XFlip,
    is_image_name,
)
from gancore.components import component
from gancore.errors import DataError


@component("dataset", "image_folder")
class ImageFolderDataset(EncodedImageDataset):
    """Every png/jpg/jpeg/bmp/webp image under a folder, recursively; classes from top-level sub-folders if asked.

    ``names`` are the image paths relative to ``root``, sorted; with ``labels`` an image's class is the
    index of its top-level sub-folder among those holding images, in sorted order.
    """

    def __init__(
        self,
        path: Annotated[str, Field(description="folder searched recursively for images")],
        resolution: Resolution = None,
        channels: Channels = 3,
        labels: Annotated[bool, Field(description="class = index of the image's top-level sub-folder")] = False,
        xflip: XFlip = False,
        in_memory: InMemory = False,
    ) -> None:
        self.root = Path(path).expanduser()
        if not self.root.is_dir():
            state = "is not a folder" if self.root.exists() else "does not exist"
            raise DataError(f"image folder {self.root} {state}")
        names = sorted(
            found.relative_to(self.root).as_posix()
            for found in self.root.rglob("*")
            if is_image_name(found.name) and found.is_file()
        )
        if not names:
            raise DataError(f"image folder {self.root} holds no images ({', '.join(IMAGE_SUFFIXES)}, in any case)")
        classes, num_classes = self._folder_classes(names) if labels else (None, 0)
        super().__init__(names, classes, num_classes, resolution, channels, xflip, in_memory)

    def _folder_classes(self, names: list[str]) -> tuple[Tensor, int]:
        """Each image's class: the sorted index of its top-level sub-folder; an image at the top is an error."""
        tops = [name.split("/", 1)[0] if "/" in name else "" for name in names]
        if "" in tops:
            loose = names[tops.index("")]
            raise DataError(
                f"with labels true every image must be in a class sub-folder of {self.root}, but {self.where(loose)} "
                f"is directly in it; move it into a sub-folder or set labels to false"
            )
        folders = sorted(set(tops))
        index = {folder: i for i, folder in enumerate(folders)}
        return torch.tensor([index[top] for top in tops]), len(folders)

    def _open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")

    def where(self, name: str) -> str:
        return str(self.root / name)


@component("dataset", "image_zip")
class ImageZipDataset(EncodedImageDataset):
    """A zip of images as written by StyleGAN's and R3GAN's dataset_tool.py, with classes from its dataset.json.

    The zip is opened lazily once per process (the handle is dropped when pickled), so DataLoader workers
    each read through their own.
    """

    def __init__(
        self,
        path: Annotated[str, Field(description="the zip file")],
        resolution: Resolution = None,
        channels: Channels = 3,
        labels: Annotated[bool, Field(description="use the labels of dataset.json when it has them")] = True,
        xflip: XFlip = False,
        in_memory: InMemory = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self._handle: tuple[int, zipfile.ZipFile] | None = None
        members = self._archive().namelist()
        names = sorted(name for name in members if is_image_name(name))
        if not names:
            raise DataError(f"image zip {self.path} holds no images ({', '.join(IMAGE_SUFFIXES)}, in any case)")
        classes, num_classes = self._json_classes(names) if labels and "dataset.json" in members else (None, 0)
        super().__init__(names, classes, num_classes, resolution, channels, xflip, in_memory)

    def _archive(self) -> zipfile.ZipFile:
        """This process's handle on the zip, opened on first use."""
        pid = os.getpid()
        if self._handle is None or self._handle[0] != pid:
            try:
                self._handle = (pid, zipfile.ZipFile(self.path))
            except FileNotFoundError:
                raise DataError(f"image zip {self.path} does not exist") from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{self.path} is not a readable zip file ({exc})") from exc
        return self._handle[1]

    def _json_classes(self, names: list[str]) -> tuple[Tensor | None, int]:
        """The classes listed by dataset.json for ``names``, or none when its labels are null."""
        try:
            meta: Any = json.loads(self._archive().read("dataset.json"))
        except (ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"cannot read {self.where('dataset.json')}: {exc}") from exc
        entries = meta.get("labels") if isinstance(meta, dict) else meta
        if not isinstance(meta, dict) or not isinstance(entries, list | None):
            raise self._format_error(entries)
        if entries is None:
            return None, 0
        table: dict[str, int] = {}
        for entry in entries:
            if not (
                isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and type(entry[1]) is int
            ):
                raise self._format_error(entry)
            table[entry[0]] = entry[1]
        present = set(names)
        absent = [name for name in table if name not in present]
        if absent:
            raise DataError(
                f"{self.where('dataset.json')} labels {absent[0]!r}"
                + (f" and {len(absent) - 1} more files" if len(absent) > 1 else "")
                + f", which {self.path} does not hold as an image"
            )
        unlabelled = [name for name in names if name not in table]
        if unlabelled:
            raise DataError(
                f"{self.where('dataset.json')} gives no label for {self.where(unlabelled[0])}"
                + (f" and {len(unlabelled) - 1} more images" if len(unlabelled) > 1 else "")
                + "; label every image or set labels to false"
            )
        classes = torch.tensor([table[name] for name in names])
        return classes, int(classes.max()) + 1

    def _format_error(self, found: Any) -> DataError:
        """The error for a dataset.json that is not of the form dataset_tool.py writes."""
        return DataError(
            f'{self.where("dataset.json")} must be {{"labels": [[file, class], ...]}} with integer classes '
            f'or {{"labels": null}}; found {found!r:.200}'
        )

    def _open(self, name: str) -> IO[bytes]:
        return self._archive().open(name)

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the zip handle, which the copy reopens on first use."""
        return {**self.__dict__, "_handle": None}
