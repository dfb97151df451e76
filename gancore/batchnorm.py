"""Cross-replica BatchNorm: batch statistics over the global batch of a data-parallel run (BigGAN).

torch's ``SyncBatchNorm`` runs on GPUs only; this one reduces the per-channel sums with the
differentiable ``torch.distributed.nn`` all-reduce, so it works on gloo (CPU) and NCCL alike, and
its gradient flows through the statistics of every rank as in one big batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def global_moments(x: Tensor, dims: list[int]) -> tuple[Tensor, Tensor, int]:
    """Mean and biased variance of ``x`` over ``dims`` and over every process's batch, and the count.

    Differentiable: the all-reduce's backward sums the gradients of every rank, as the forward
    summed their values. Accumulated in float32 whatever the input's dtype.
    """
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce

    xf = x.float()
    count = x.numel() // x.shape[1]
    sums = torch.cat([xf.sum(dims), (xf * xf).sum(dims)])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sums = all_reduce(sums)
        count *= dist.get_world_size()
    mean, square = sums.chunk(2)
    mean, square = mean / count, square / count
    return mean, (square - mean * mean).clamp_min(0), count


class CrossReplicaBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over any number of spatial dimensions whose training statistics span all processes.

    Outside a process group, or in eval mode, it is exactly ``nn.BatchNorm{1,2,3}d``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input with a channel dimension, got shape {tuple(input.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        import torch.distributed as dist

        synced = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and synced):
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
