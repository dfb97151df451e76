"""Settings for the plugin's tests: one thread per process, since their networks are tiny."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)  # more threads only fight over the cores for layers this small
