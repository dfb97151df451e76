"""Processes of a data-parallel run: torch.distributed's process group, launched by torchrun.

``gancore run --nproc N`` hands itself to ``torch.distributed.run`` (torchrun); every process then
joins the group from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``), on NCCL for GPUs and gloo on CPU. A single process needs none
of it: every helper here is then a no-op.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# torch.distributed.nn binds the default group as an argument default when first imported (torch.optim imports it
# through torch._dynamo). Imported after `join` made the group, it would keep the group and gloo's threads alive
# past `leave` into interpreter shutdown, where such a thread can abort the process; so it is imported first.
import torch.distributed.nn  # noqa: F401
from torch import Tensor

from gancore.errors import GancoreError


@dataclass(frozen=True)
class World:
    """This process's place in the run: its rank among ``size`` processes and the device it trains on."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Rank 0 alone writes logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher that sets its variables) started this process as one of many."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str) -> World:
    """Join the process group torchrun set up (if any) and pick this process's device.

    ``device`` is the recipe's ``auto | cpu | cuda``: ``auto`` is CUDA when a GPU is visible. With
    several processes on CUDA each takes the GPU of its ``LOCAL_RANK``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GancoreError("train.device = 'cuda', but no GPU is visible; use device: auto or cpu")
    if not launched_by_torchrun():
        return World(device=torch.device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise GancoreError(f"process {local_rank} on this machine has no GPU of its own: "
                               f"{torch.cuda.device_count()} visible; start at most that many processes per node")
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
    else:
        where = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo", device_id=where
                                if where.type == "cuda" else None)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, where)


def leave() -> None:
    """Tear the process group down at the end of a run or evaluation.

    After a clean finish every process first waits for the others, so that none closes its connections while
    another still uses them; while an exception propagates it does not wait, since the others may never arrive.
    Destroying the group stops gloo's threads here, while the interpreter is whole (see the imports).
    """
    if dist.is_initialized():
        if sys.exc_info()[0] is None and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def derive_seed(seed: int, *keys: object) -> int:
    """A seed for one named stream of a run (a rank's own draws, an epoch's order), derived from the recipe's."""
    digest = hashlib.sha256("/".join(["gancore", str(seed), *map(str, keys)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def all_reduce_sum_(tensor: Tensor, world: World) -> Tensor:
    """Sum ``tensor`` over all processes, in place; one process leaves it as it is."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every process (pickled: use only for objects this program made)."""
    if not world.distributed:
        return obj
    box = [obj if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, world: World) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not world.distributed:
        return [obj]
    found: list[Any] = [None] * world.size
    dist.all_gather_object(found, obj)
    return found


def all_gather_rows(tensor: Tensor, world: World) -> list[Tensor]:
    """Every process's 2-D ``tensor`` (same shape on all), in rank order, on every process."""
    if not world.distributed:
        return [tensor]
    found = [torch.empty_like(tensor) for _ in range(world.size)]
    dist.all_gather(found, tensor.contiguous())
    return found


def broadcast_tensors(tensors: dict[str, Tensor] | None, world: World) -> dict[str, Tensor]:
    """Rank 0's named tensors on every process (through the device: no pickling of the data)."""
    if not world.distributed:
        assert tensors is not None
        return tensors
    layout = broadcast({k: (tuple(v.shape), v.dtype) for k, v in tensors.items()} if world.main else None, world)
    result = {}
    for name, (shape, dtype) in layout.items():
        buffer = tensors[name].to(world.device) if world.main else torch.empty(shape, dtype=dtype, device=world.device)
        dist.broadcast(buffer, src=0)
        result[name] = buffer.cpu()
    return result


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``gancore <argv>`` in ``nproc`` processes on this machine under torchrun; returns its exit status.

    torchrun stops the others when one process fails and forwards SIGINT/SIGTERM to every process.
    Each process gets an equal share of the CPUs as its threads unless ``OMP_NUM_THREADS`` is set.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpus // nproc)))

    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "--module", "gancore", *argv]
    )
    try:
        run(args)
    except SignalException as exc:  # the processes were told too; rank 0 said where its checkpoint is
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        first = min(exc.failures.values(), key=lambda f: f.timestamp)
        if first.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # stopped on a signal, checkpoint written
            return first.exitcode
        print(f"error: process {first.local_rank} of {nproc} failed with exit status {first.exitcode}; "
              f"the others were stopped", file=sys.stderr)
        return first.exitcode if first.exitcode > 0 else 1
    return 0
