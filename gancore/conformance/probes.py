"""Small networks of the kit's own, which regularizers attach to and metrics measure.

They hold every kind of layer a regularizer may select (convolutions, linear layers, an embedding, a
BatchNorm), so a regularizer is exercised on each.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gancore.interfaces import Discriminator, Generator

CLASSES = 3
IMAGE = (3, 8, 8)


class ProbeGenerator(Generator):
    """z (and a class embedding) → linear → 4×4 maps → BatchNorm, ReLU, upsample, 3×3 conv → tanh."""

    def __init__(self, shape: tuple[int, ...] = IMAGE, num_classes: int = CLASSES, z_dim: int = 8) -> None:
        channels, resolution = shape[0], shape[1] if len(shape) == 3 else 0
        super().__init__(z_dim, num_classes, resolution, channels)
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        inputs = z_dim + (4 if num_classes else 0)
        if resolution:
            self.linear = nn.Linear(inputs, 8 * 4 * 4)
            self.body = nn.Sequential(nn.BatchNorm2d(8), nn.ReLU(), nn.Upsample(size=resolution),
                                      nn.Conv2d(8, channels, 3, padding=1), nn.Tanh())
        else:
            self.linear = nn.Linear(inputs, 16)
            self.body = nn.Sequential(nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, channels))

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(c)], 1)
        h = self.linear(z)
        return self.body(h.view(len(z), 8, 4, 4) if self.resolution else h)


class ProbeDiscriminator(Discriminator):
    """3×3 conv, leaky ReLU, 4×4 stride-2 conv, leaky ReLU, linear, plus a class projection."""

    def __init__(self, shape: tuple[int, ...] = IMAGE, num_classes: int = CLASSES) -> None:
        super().__init__(num_classes)
        channels = shape[0]
        self.body = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(8, 8, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Flatten())
        self.head = nn.Linear(8 * (shape[1] // 2) * (shape[2] // 2), 1)
        self.embed = nn.Embedding(num_classes, self.head.in_features) if num_classes else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.body(x)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(1)
        return out


class LinearCritic(Discriminator):
    """D(x) = ⟨w, x⟩ + b with ‖w‖ = ``norm``: its input gradient has that norm everywhere, which is where a
    gradient penalty aiming at that norm vanishes."""

    def __init__(self, shape: tuple[int, ...], norm: float, num_classes: int = CLASSES) -> None:
        super().__init__(num_classes)
        w = torch.randn(math.prod(shape), dtype=torch.float64)
        self.weight = nn.Parameter((w * (norm / w.norm())).float())
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return x.flatten(1) @ self.weight + self.bias
