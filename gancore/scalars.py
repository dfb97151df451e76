"""Training scalars: averaged between log points and over processes, written to JSONL and TensorBoard by rank 0."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gancore.distributed import World, all_reduce_sum_
from gancore.evaluation import RESULTS


class ScalarLog:
    """Collects per-step values (tensors are read only at log time, so the GPU is not synchronised each step).

    Every process collects its own values; ``write`` averages them over the log interval and over the
    processes, and rank 0 (``out_dir`` given) writes them. Other processes pass ``out_dir=None``.
    """

    def __init__(self, out_dir: Path | None, world: World | None = None) -> None:
        self._values: dict[str, list[Tensor | float]] = defaultdict(list)
        self.out_dir = out_dir
        self.world = world or World()
        self._jsonl: Any = None
        self._tb: Any = None
        self._purge_step: int | None = None

    def _open(self) -> bool:
        """Open the files on first use (rank 0 only); False on other processes."""
        if self.out_dir is None:
            return False
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._jsonl = (self.out_dir / "log.jsonl").open("a")
            self._tb = SummaryWriter(str(self.out_dir), purge_step=self._purge_step)
        return True

    def add(self, name: str, value: Tensor | float) -> None:
        self._values[name].append(value.detach() if isinstance(value, Tensor) else value)

    def write(self, kimg: float, extra: dict[str, float] | None = None) -> dict[str, float]:
        """Average what was added since the last write over steps and processes, record it at ``kimg`` and return it.

        Every process must call it at the same step (it is a collective when there are several).
        """
        names = sorted(self._values)
        device = self.world.device
        local = torch.stack([torch.stack([torch.as_tensor(v, device=device).double() for v in self._values[k]]).mean()
                             for k in names]) if names else torch.zeros(0, dtype=torch.float64, device=device)
        self._values.clear()
        means = all_reduce_sum_(local, self.world).cpu() / self.world.size  # one transfer for all
        values = dict(zip(names, means.tolist()))
        values.update(extra or {})
        self.record(kimg, values)
        return values

    def record(self, kimg: float, values: dict[str, float]) -> None:
        """Write values as they are (no averaging): a JSONL line and TensorBoard scalars at step ``kimg``."""
        if not self._open():
            return
        self._jsonl.write(json.dumps({"kimg": round(kimg, 3), **values}) + "\n")
        self._jsonl.flush()
        step = int(round(kimg * 1000))
        for name, value in values.items():
            self._tb.add_scalar(name, value, step)
        self._tb.flush()

    def event(self, kimg: float, fields: dict[str, Any]) -> None:
        """A line in the JSONL log only: something that happened, such as a skipped update."""
        if self._open():
            self._jsonl.write(json.dumps({"kimg": round(kimg, 3), **fields}) + "\n")
            self._jsonl.flush()

    def image(self, name: str, path: Path, kimg: float) -> None:
        """Show a PNG written by the run in TensorBoard too."""
        if not self._open():
            return
        picture = np.asarray(Image.open(path).convert("RGB"))
        self._tb.add_image(name, picture, int(round(kimg * 1000)), dataformats="HWC")

    def rewind(self, kimg: float) -> None:
        """Forget what a stopped run logged (and evaluated) after ``kimg``, before a resumed run does it again."""
        if self.out_dir is None:
            return
        self._purge_step = int(round(kimg * 1000)) + 1  # TensorBoard drops events from this step on
        for name in ("log.jsonl", RESULTS):
            path = self.out_dir / name
            if path.exists():
                kept = [line for line in path.read_text().splitlines(keepends=True) if _logged_by(line, kimg)]
                path.write_text("".join(kept))

    def close(self) -> None:
        if self._tb is not None:
            self._jsonl.close()
            self._tb.close()


def tensorboard_scalars(run_dir: Path, kimg: float, values: dict[str, float]) -> None:
    """Add scalars to a run's TensorBoard events at step ``kimg`` (as the trainer counts it), outside training."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir)) as writer:
        for name, value in values.items():
            writer.add_scalar(name, value, int(round(kimg * 1000)))


def _logged_by(line: str, kimg: float) -> bool:
    """Whether a JSONL line is whole and was written at or before ``kimg`` (a killed run may leave half a line)."""
    try:
        return bool(line.endswith("\n")) and json.loads(line).get("kimg", 0) <= round(kimg, 3)
    except json.JSONDecodeError:
        return False
