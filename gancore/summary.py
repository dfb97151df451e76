"""Size and cost of a recipe's networks: trainable parameters and forward FLOPs per sample."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gancore.interfaces import Discriminator, Generator

_BATCH = 2  # more than one sample, so batch-statistics layers behave as in training


def _row(network: nn.Module, run: Any) -> dict[str, Any]:
    network.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = run()
    return {
        "name": type(network).__name__,
        "params": sum(p.numel() for p in network.parameters() if p.requires_grad),
        "flops_per_image": counter.get_total_flops() // _BATCH,
        "output_shape": list(out.shape[1:]),
    }


def summarize(generator: Generator, discriminator: Discriminator) -> dict[str, dict[str, Any]]:
    """``{"generator": {...}, "discriminator": {...}}`` with params, flops_per_image, output_shape, name.

    FLOPs are counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs) on a
    forward pass in eval mode; D is fed samples shaped like G's output.
    """
    z = generator.sample_z(_BATCH)
    c = torch.zeros(_BATCH, dtype=torch.long) if generator.num_classes else None
    x = torch.zeros(_BATCH, *generator.output_shape)
    return {
        "generator": _row(generator, lambda: generator(z, c)),
        "discriminator": _row(discriminator, lambda: discriminator(x, c)),
    }
