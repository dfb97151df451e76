"""Adaptive p under data parallelism: every process moves p by the sign statistic of the whole global batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from gancore.registry import default_registry

from gancore_ada.ada import ADA


def adaptive() -> ADA:
    """Adaptive p toward r_t = 0.6, adjusted every 2 D steps, fast (0.5 kimg from 0 to 1)."""
    return default_registry().create("augmenter", "ada", {"p": 0.0, "target": 0.6, "interval": 2, "adjust_kimg": 0.5})


def _adapt(rank: int, rendezvous: Path, logits: torch.Tensor, out: dict[int, Any]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        ada = adaptive()
        for step in logits:  # (steps, global batch): this rank's half of each step's batch
            ada.update(0.0, step[rank * 8:(rank + 1) * 8])
        out[rank] = (float(ada.p), float(ada.rt))
    finally:
        dist.destroy_process_group()


def test_two_processes_move_p_as_one_process_with_the_whole_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # mostly positive logits on reals (D overfits) for 4 steps, then mostly negative for 2
    logits = torch.cat([torch.randn(4, 16) + 1.0, torch.randn(2, 16) - 2.0])
    results = mp.Manager().dict()
    mp.spawn(_adapt, args=(tmp_path / "rendezvous", logits, results), nprocs=2)
    whole = adaptive()
    for step in logits:
        whole.update(0.0, step)
    assert results[0] == results[1] == (float(whole.p), float(whole.rt))
    # only the first half's view would see other signs: the reduction matters for the value
    half = adaptive()
    for step in logits:
        half.update(0.0, step[:8])
    assert float(half.p) != float(whole.p)
