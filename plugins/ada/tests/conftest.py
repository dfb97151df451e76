"""One thread per test process: the suite runs under pytest-xdist on two cores."""

import torch

torch.set_num_threads(1)
