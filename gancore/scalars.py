"""Training scalars: averaged between log points, written to JSONL and TensorBoard."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


class ScalarLog:
    """Collects per-step values (tensors are read only at log time, so the GPU is not synchronised each step)."""

    def __init__(self, out_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._values: dict[str, list[Tensor | float]] = defaultdict(list)
        self._jsonl = (out_dir / "log.jsonl").open("a")
        self._tb = SummaryWriter(str(out_dir))

    def add(self, name: str, value: Tensor | float) -> None:
        self._values[name].append(value.detach() if isinstance(value, Tensor) else value)

    def write(self, kimg: float, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Average what was added since the last write, record it at ``kimg`` and return it."""
        means = {k: float(torch.tensor([float(v) for v in vs]).mean()) for k, vs in self._values.items() if vs}
        means.update(extra or {})
        self._values.clear()
        self.record(kimg, means)
        return means

    def record(self, kimg: float, values: dict[str, float]) -> None:
        """Write values as they are (no averaging): a JSONL line and TensorBoard scalars at step ``kimg``."""
        self._jsonl.write(json.dumps({"kimg": round(kimg, 3), **values}) + "\n")
        self._jsonl.flush()
        step = int(round(kimg * 1000))
        for name, value in values.items():
            self._tb.add_scalar(name, value, step)
        self._tb.flush()

    def image(self, name: str, path: Path, kimg: float) -> None:
        """Show a PNG written by the run in TensorBoard too."""
        picture = np.asarray(Image.open(path).convert("RGB"))
        self._tb.add_image(name, picture, int(round(kimg * 1000)), dataformats="HWC")

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()
