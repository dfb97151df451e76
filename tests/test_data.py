"""The order of the data: one permutation per epoch, shared out over processes, resumable at any batch."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gancore.data import Batches, ShardedBatches, default_workers
from gancore.distributed import World
from gancore.registry import default_registry


def take(sampler: ShardedBatches, n: int) -> list[list[int]]:
    return list(itertools.islice(iter(sampler), n))


@settings(max_examples=60, deadline=None)
@given(length=st.integers(8, 300), share=st.integers(1, 8), size=st.sampled_from([1, 2, 3, 4]),
       seed=st.integers(0, 1000), start=st.integers(0, 40))
def test_processes_share_out_exactly_the_batches_of_one_process(length: int, share: int, size: int, seed: int,
                                                                start: int) -> None:
    batch = share * size
    if batch > length:
        batch, share = size, 1
    per_epoch = length // batch
    one = take(ShardedBatches(length, batch, World(), seed), start + 12 + 2 * per_epoch)
    ranks = [take(ShardedBatches(length, batch, World(rank=r, size=size), seed, start), 12) for r in range(size)]
    for k in range(12):
        assert sum((ranks[r][k] for r in range(size)), []) == one[start + k]  # rank r holds the r-th slice
    epoch = sum(one[:per_epoch], [])
    assert len(set(epoch)) == len(epoch) == per_epoch * batch and set(epoch) <= set(range(length))
    assert sum(one[per_epoch:2 * per_epoch], []) != epoch  # each epoch draws its own order (8! orders at least)


def test_the_order_depends_on_the_seed_only() -> None:
    a = take(ShardedBatches(100, 10, World(), seed=1), 10)
    assert a == take(ShardedBatches(100, 10, World(), seed=1), 10)
    assert a != take(ShardedBatches(100, 10, World(), seed=2), 10)
    torch.manual_seed(0)
    b = take(ShardedBatches(100, 10, World(), seed=1), 10)
    torch.manual_seed(1)
    assert b == take(ShardedBatches(100, 10, World(), seed=1), 10) == a  # the global stream is not used


def test_batches_on_worker_processes_match_the_main_process_and_count_waiting(tmp_path: Path) -> None:
    data = default_registry().create("dataset", "digits", {})
    here = Batches(data, 32, World(), seed=4, num_workers=0, conditional=True, start=3)
    there = Batches(data, 32, World(), seed=4, num_workers=2, conditional=True, start=3)
    for _ in range(5):
        (x, c), (y, d) = here.next(), there.next()
        assert torch.equal(x, y) and torch.equal(c, d)
    assert x.dtype == torch.float32 and float(x.min()) >= -1 and float(x.max()) <= 1 and c.dtype == torch.long
    assert here.position == there.position == 8
    assert there.waited > 0


def test_loader_workers_default_to_none_for_data_held_in_memory(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"{i}.png")
    registry = default_registry()
    assert default_workers(registry.create("dataset", "digits", {}), World()) == 0
    assert default_workers(registry.create("dataset", "image_folder", {"path": str(tmp_path)}), World()) >= 1
    held = registry.create("dataset", "image_folder", {"path": str(tmp_path), "in_memory": True})
    assert default_workers(held, World()) == 0
