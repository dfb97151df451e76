"""Where gancore finds the weights of the networks metrics embed with, and where it keeps its cache.

Nothing is downloaded unless a user asks for it: a weights file is given as a path (a command-line
option or a metric's parameter), named by an environment variable, or found in torch's hub checkpoint
folder, where torch and torchvision keep what they download.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gancore.errors import GancoreError


@dataclass(frozen=True)
class WeightsFile:
    """A published weights file: its standard name, what it holds, where it is published, and its variable."""

    filename: str
    what: str
    url: str
    env: str
    param: str
    option: str

    @property
    def hash_prefix(self) -> str | None:
        """The SHA-256 prefix torch's hub convention puts in the name (``name-<hex>.pth``), if there is one."""
        found = re.search(r"-([0-9a-f]{8,})\.\w+$", self.filename)
        return found.group(1) if found else None


class WeightsNotFound(GancoreError):
    """A weights file that none of the places looked in has; ``param`` is the metric parameter that names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


FID_INCEPTION = WeightsFile(
    filename="pt_inception-2015-12-05-6726825d.pth",
    what="the FID Inception weights (TensorFlow's 2015-12-05 InceptionV3 ported to PyTorch, 95.6 MB)",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    env="GANCORE_INCEPTION_WEIGHTS",
    param="inception_weights",
    option="--inception-weights",
)
VGG16 = WeightsFile(
    filename="vgg16-397923af.pth",
    what="torchvision's ImageNet VGG16 weights (528 MB)",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    env="GANCORE_VGG16_WEIGHTS",
    param="vgg16_weights",
    option="--vgg16-weights",
)


def hub_checkpoints() -> Path:
    """torch's hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_dir() -> Path:
    """gancore's cache (reference statistics): ``$GANCORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/gancore`` or ``~/.cache/gancore``."""
    if os.environ.get("GANCORE_CACHE_DIR"):
        return Path(os.environ["GANCORE_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gancore"


def find_weights(spec: WeightsFile, given: str | Path | None = None, download: bool = False) -> Path:
    """The weights file: ``given``, else ``$<spec.env>``, else the hub checkpoint folder; downloaded there only if asked.

    A path that is given (or named by the variable) must exist: a typo is reported, not passed over.
    """
    for source, value in ((f"{spec.param} / {spec.option}", given), (f"${spec.env}", os.environ.get(spec.env))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise WeightsNotFound(f"{source} names {path}, which is not a file; it should be {spec.filename}, "
                                      f"{spec.what}", spec.param)
            return path
    cached = hub_checkpoints() / spec.filename
    if cached.is_file():
        return cached
    if download:
        return _download(spec, cached)
    raise WeightsNotFound(
        f"{spec.what} are needed: the file {spec.filename}, published at {spec.url}. gancore downloads nothing "
        f"unless asked: give the file's path with {spec.option} (gancore eval) or the metric's parameter "
        f"{spec.param}, set ${spec.env} to it, or put it in {cached.parent}; `gancore eval --download` fetches it "
        f"there when this machine can reach the internet", spec.param)


def _download(spec: WeightsFile, target: Path) -> Path:
    """Fetch the file into the hub folder, checking the SHA-256 prefix in its name."""
    import torch.hub

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(spec.url, str(target), hash_prefix=spec.hash_prefix, progress=True)
    except (OSError, RuntimeError) as exc:
        raise WeightsNotFound(f"could not download {spec.url}: {exc}; get {spec.filename} another way and give "
                              f"its path with {spec.option}", spec.param) from None
    return target


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, modification time) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]
