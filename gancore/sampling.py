"""Drawing samples from a generator for metrics and pictures."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from gancore.interfaces import Generator, Sampler


class GeneratorSampler(Sampler):
    """Samples of ``generator`` under a fixed seed; conditional generators get uniformly drawn labels."""

    def __init__(self, generator: Generator, device: torch.device, batch_size: int = 256, seed: int = 0) -> None:
        self.generator = generator
        self.device = device
        self.batch_size = batch_size
        self.seed = seed

    @torch.no_grad()
    def batches(self, n: int) -> Iterator[Tensor]:
        rng = torch.Generator(self.device).manual_seed(self.seed)
        G = self.generator
        for start in range(0, n, self.batch_size):
            size = min(self.batch_size, n - start)
            z = G.sample_z(size, self.device, rng)
            c = torch.randint(G.num_classes, (size,), device=self.device, generator=rng) if G.num_classes else None
            yield G(z, c)
