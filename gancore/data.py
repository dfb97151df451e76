"""Feeding a run: the order of the data, its split over processes, and loading off the training step.

The global batch k is a slice of one permutation of the data set per epoch, drawn from the
recipe's seed alone; process r takes the r-th contiguous share of it. So the images a step sees,
and their pairing with the step's latents, do not depend on how many processes share the batch,
and a run resumed at batch k continues the order exactly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import torch
from torch import Tensor

from gancore.distributed import World, derive_seed
from gancore.interfaces import Dataset


def to_model_space(x: Tensor) -> Tensor:
    """Data as the networks see it: uint8 images to floats in [-1, 1]; points unchanged."""
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()


class ShardedBatches(torch.utils.data.Sampler[list[int]]):
    """Endless lists of indices: this process's share of each global batch, from batch ``start`` on."""

    def __init__(self, length: int, batch_size: int, world: World, seed: int, start: int = 0) -> None:
        self.length, self.batch_size, self.world, self.seed, self.start = length, batch_size, world, seed, start
        self.per_epoch = length // batch_size
        self.share = batch_size // world.size

    def epoch_order(self, epoch: int) -> Tensor:
        """The permutation of epoch ``epoch``: the same on every process."""
        rng = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
        return torch.randperm(self.length, generator=rng)

    def __iter__(self) -> Iterator[list[int]]:
        position = self.start
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        while True:
            if position // self.per_epoch != epoch:
                epoch = position // self.per_epoch
                order = self.epoch_order(epoch)
            first = (position % self.per_epoch) * self.batch_size + self.world.rank * self.share
            yield order[first:first + self.share].tolist()
            position += 1


class Batches:
    """This process's batches on its device, in model space, with the time spent waiting for them."""

    def __init__(self, dataset: Dataset, batch_size: int, world: World, seed: int, num_workers: int | None,
                 conditional: bool, start: int = 0) -> None:
        workers = default_workers(dataset, world) if num_workers is None else num_workers
        cuda = world.device.type == "cuda"
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=ShardedBatches(len(dataset), batch_size, world, seed, start),
            num_workers=workers, prefetch_factor=4 if workers else None, persistent_workers=workers > 0,
            pin_memory=cuda, generator=torch.Generator().manual_seed(seed),  # not the global stream
        )
        self.device, self.conditional = world.device, conditional
        self.position = start
        self.waited = 0.0
        self._iterator: Iterator[tuple[Tensor, Tensor]] | None = None

    def next(self) -> tuple[Tensor, Tensor | None]:
        """The next batch: (x in model space, labels or None); counts the seconds spent blocked on it."""
        began = time.perf_counter()
        if self._iterator is None:
            self._iterator = iter(self.loader)
        x, c = next(self._iterator)
        x = to_model_space(x.to(self.device, non_blocking=True))
        labels = c.to(self.device, non_blocking=True).long() if self.conditional else None
        self.waited += time.perf_counter() - began
        self.position += 1
        return x, labels


def default_workers(dataset: Dataset, world: World) -> int:
    """Loader processes when the recipe says ``auto``: none for data held in memory, else a share of the CPUs."""
    if dataset.in_memory:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world.size))
    return max(1, min(8, cpus // max(per_node, 1) - 1))
