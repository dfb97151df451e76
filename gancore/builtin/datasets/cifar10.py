"""CIFAR-10, read straight from the official python tarball (downloaded on request)."""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from gancore.builtin.datasets.base import TensorImageDataset, XFlip
from gancore.components import component
from gancore.errors import DataError

FILENAME = "cifar-10-python.tar.gz"
URL = f"https://www.cs.toronto.edu/~kriz/{FILENAME}"
MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES = {
    "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
}


@component("dataset", "cifar10")
def cifar10(
    root: Annotated[str, Field(description=f"folder holding {FILENAME}")] = "~/.cache/gancore/cifar10",
    split: Literal["train", "test"] = "train",
    download: Annotated[bool, Field(description=f"fetch {FILENAME} from {URL} if it is not in root")] = False,
    xflip: XFlip = False,
) -> TensorImageDataset:
    """CIFAR-10: 32×32 RGB photos in 10 classes, 50,000 train and 10,000 test, from the official python tarball."""
    path = Path(root).expanduser() / FILENAME
    if not path.is_file():
        if not download:
            raise DataError(missing_message(path, f"{path} does not exist"))
        fetch(path)
    images, labels = read_split(path, split)
    return TensorImageDataset(images, labels, 10, xflip)


def missing_message(path: Path, reason: str) -> str:
    """What to do when the tarball is not at ``path``, after ``reason``."""
    return (
        f"{reason}. CIFAR-10 needs the file {FILENAME} (the 'CIFAR-10 python version', 163 MB) at {path}: "
        f"download it from {URL} and put it there, or set `download: true` in the dataset's params to fetch it"
    )


def fetch(path: Path) -> None:
    """Download the tarball to a temporary file beside ``path``, check its md5, then move it to ``path``."""
    partial: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f"{FILENAME}.", suffix=".part")
        partial = Path(name)
        digest = hashlib.md5()
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(URL, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != MD5:
            raise DataError(
                f"the download of {URL} is corrupt (md5 {digest.hexdigest()}, expected {MD5}) and was removed; "
                f"try again, or download it yourself and put it at {path}"
            )
        os.replace(partial, path)
    except OSError as exc:
        raise DataError(missing_message(path, f"downloading {URL} failed ({exc})")) from exc
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)


def read_split(path: Path, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
    """The split's images (N, 3, 32, 32) uint8 and labels (N,), unpickled from the tar members in memory."""
    wanted = BATCHES[split]
    batches: dict[str, Any] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                file = tar.extractfile(member) if member.name in wanted else None
                if file is not None:
                    batches[member.name] = pickle.load(file, encoding="bytes")
                    if len(batches) == len(wanted):
                        break
        missing = [name for name in wanted if name not in batches]
        if missing:
            raise DataError(f"{path} lacks {', '.join(missing)}; it is not the official {FILENAME}")
        data = np.concatenate([np.asarray(batches[name][b"data"], dtype=np.uint8) for name in wanted])
        labels = np.concatenate([np.asarray(batches[name][b"labels"], dtype=np.int64) for name in wanted])
        images = torch.from_numpy(data.reshape(-1, 3, 32, 32))
    except (tarfile.TarError, OSError, EOFError, zlib.error, pickle.UnpicklingError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read {path} as CIFAR-10 ({exc}); delete it and download {URL} again") from exc
    return images, torch.from_numpy(labels)
