"""Settings for the ada plugin's tests: one thread per process (the tests are small; more threads only fight over
the cores, and pytest-xdist runs a process per core)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
