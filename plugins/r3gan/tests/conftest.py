"""Settings for the plugin's tests when they run from their own directory: one thread per process."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)  # small networks: more threads only fight over the cores (and pytest-xdist's workers)
