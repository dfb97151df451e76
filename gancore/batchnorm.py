"""Cross-replica BatchNorm: batch statistics over the global batch of a data-parallel run (BigGAN).

torch's ``SyncBatchNorm`` runs on GPUs only; this one reduces the per-channel sums with an all-reduce
whose backward is an all-reduce too, so it works on gloo (CPU) and NCCL alike, and its gradient flows
through the statistics of every rank as in one big batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose backward sums the gradients of every process in turn, as one big batch's would be."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def _synced() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_moments(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor, int]:
    """Mean and biased variance of ``x`` over ``dims`` and over every process's batch, and the count.

    Differentiable, in float32 whatever the input's dtype, and in two passes (the mean, then the
    squared deviations from it), so that a large mean does not cancel the variance's digits.
    """
    xf = x.float()
    count = x.numel() // x.shape[1]
    world = dist.get_world_size() if _synced() else 1
    total = xf.sum(dims)
    mean = (_SumOverProcesses.apply(total) if world > 1 else total) / (count * world)
    shape = [1, -1] + [1] * (x.dim() - 2)
    squares = (xf - mean.view(shape)).square().sum(dims)
    var = (_SumOverProcesses.apply(squares) if world > 1 else squares) / (count * world)
    return mean, var, count * world


class CrossReplicaBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over any number of spatial dimensions whose training statistics span all processes.

    Outside a process group, or in eval mode, it is exactly ``nn.BatchNorm{1,2,3}d``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input with a channel dimension, got shape {tuple(input.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and _synced()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        mean, var, count = global_moments(x, dims)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var * (count / max(count - 1, 1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        shape = [1, -1] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias
        return (x.float() * scale.view(shape) + shift.view(shape)).to(x.dtype)


def cross_replica(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` by a ``CrossReplicaBatchNorm`` with the same state."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, CrossReplicaBatchNorm):
        synced = CrossReplicaBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                       module.track_running_stats)
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        state = list(module.state_dict().values())
        return synced.to(state[0].device) if state else synced
    for name, child in module.named_children():
        setattr(module, name, cross_replica(child))
    return module


@torch.no_grad()
def stand(generator: nn.Module, passes: int, batch_size: int = 64, seed: int = 0) -> None:
    """BigGAN's standing statistics: G's BatchNorm running statistics become their plain average over ``passes``
    batches of random latents (and labels), so that a sample no longer depends on the batch it was drawn in.

    Every process must call it together when G's BatchNorm is cross-replica (it runs G in training mode).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if passes < 1 or not norms:
        return
    device = next(generator.parameters()).device
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    was_training = generator.training
    generator.train()
    rng = torch.Generator(device).manual_seed(seed)
    classes = getattr(generator, "num_classes", 0)
    for _ in range(passes):
        z = generator.sample_z(batch_size, device, rng)  # type: ignore[operator]
        c = torch.randint(classes, (batch_size,), device=device, generator=rng) if classes else None
        generator(z, c)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.train(was_training)
