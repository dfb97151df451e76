"""Building blocks of the GAN Landscape networks: normalisation layers chosen by name and the study's ResBlock.

No layer here normalises weights: spectral norm is gancore-sn's regularizer, attached to the finished network.
Every layer keeps PyTorch's default initialisation (the study's reference gives none to reproduce).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

Normalization = Literal["none", "batch", "layer"]
Resample = Literal["up", "down", "none"]


class LayerNorm2d(nn.GroupNorm):
    """Layer norm of feature maps as the study applies it in D: each sample is normalised over all of (C, H, W)
    together (one mean and one biased variance per sample, ε = 1e-5), then scaled and shifted per channel by a
    learnable γ (ones at first) and β (zeros at first), C values each.

    That is a group norm with a single group; unlike BatchNorm it never mixes samples, so gradient penalties
    see each sample's logit as a function of that sample alone.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels)


def norm2d(kind: Normalization, channels: int) -> nn.Module:
    """The normalisation of ``channels`` feature maps named ``kind``: BatchNorm2d (PyTorch's defaults), LayerNorm2d,
    or the identity for "none"."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return LayerNorm2d(channels)
    return nn.Identity()


def conv3x3(inputs: int, outputs: int) -> nn.Conv2d:
    """A 3×3 stride-1 convolution with a bias, zero-padded so the size is kept."""
    return nn.Conv2d(inputs, outputs, 3, padding=1)


class ResBlock(nn.Module):
    """The study's pre-activation residual block, shared by G (``resample="up"``) and D ("down" or "none").

    Main path: norm → ReLU → [2× nearest upsample] → conv3×3 (C_in → C_out) → norm → ReLU → conv3×3 → [2×2 average
    pool]. Shortcut: [upsample] → conv3×3 (C_in → C_out) → [average pool]; the study's table gives every block a
    3×3 shortcut convolution, whether or not it resamples or changes channels. The output is their sum.
    """

    def __init__(self, inputs: int, outputs: int, resample: Resample, normalization: Normalization) -> None:
        super().__init__()
        self.resample = resample
        self.norm1 = norm2d(normalization, inputs)
        self.conv1 = conv3x3(inputs, outputs)
        self.norm2 = norm2d(normalization, outputs)
        self.conv2 = conv3x3(outputs, outputs)
        self.shortcut = conv3x3(inputs, outputs)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(x))
        if self.resample == "up":
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        skip = self.shortcut(x)
        if self.resample == "down":
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip
