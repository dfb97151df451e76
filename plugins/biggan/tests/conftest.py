"""Test-session settings: a single CPU thread, so the small networks here do not oversubscribe the cores."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by OpenMP when torch loads, hence before the import

import torch  # noqa: E402

torch.set_num_threads(1)
