"""Multi-layer perceptrons: the networks of 2-D toy problems and of tiny image sets."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn

from gancore.components import component
from gancore.interfaces import Discriminator, Generator

Width = Annotated[int, Field(gt=0, description="units per hidden layer")]
Depth = Annotated[int, Field(ge=1, description="hidden layers")]
Classes = Annotated[int, Field(ge=0, description="0 for an unconditional network")]
Resolution = Annotated[int, Field(ge=0, description="image side; 0 for points of dimension `channels`")]


def _mlp(inputs: int, width: int, depth: int, outputs: int, batchnorm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width, bias=not batchnorm)]  # BatchNorm removes a bias
        layers += [nn.BatchNorm1d(width)] if batchnorm else []
        layers += [nn.LeakyReLU(0.2)]
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


@component("generator", "mlp", examples=[
    {"z_dim": 8, "width": 32, "depth": 2},
    {"z_dim": 8, "width": 32, "depth": 2, "channels": 1, "resolution": 8, "batchnorm": True}])
class MLPGenerator(Generator):
    """An MLP generator with leaky ReLUs: 2-D points (resolution 0) or small images (tanh output)."""

    def __init__(
        self,
        z_dim: Annotated[int, Field(gt=0)] = 64,
        width: Width = 256,
        depth: Depth = 3,
        channels: Annotated[int, Field(gt=0)] = 2,
        resolution: Resolution = 0,
        num_classes: Classes = 0,
        embed_dim: Annotated[int, Field(gt=0, description="class embedding size, when conditional")] = 32,
        batchnorm: Annotated[bool, Field(description="BatchNorm after each hidden layer, with statistics over "
                                                     "the global batch under data parallelism")] = False,
    ) -> None:
        super().__init__(z_dim, num_classes, resolution, channels)
        self.cross_replica_batchnorm = batchnorm
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        inputs = z_dim + (embed_dim if num_classes else 0)
        self.net = _mlp(inputs, width, depth, math.prod(self.output_shape), batchnorm)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(c)], dim=1)
        x = self.net(z).view(-1, *self.output_shape)
        return torch.tanh(x) if self.resolution else x


@component("discriminator", "mlp", examples=[
    {"width": 32, "depth": 2}, {"width": 32, "depth": 2, "channels": 1, "resolution": 8}])
class MLPDiscriminator(Discriminator):
    """An MLP discriminator with leaky ReLUs and, when conditional, a projection head (Miyato & Koyama)."""

    def __init__(
        self,
        width: Width = 256,
        depth: Depth = 3,
        channels: Annotated[int, Field(gt=0)] = 2,
        resolution: Resolution = 0,
        num_classes: Classes = 0,
    ) -> None:
        super().__init__(num_classes)
        self.body = _mlp(channels * max(resolution, 1) ** 2, width, depth, width)[:-1]
        self.head = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width) if num_classes else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.body(x.flatten(1))
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(dim=1)
        return out


COMPONENTS = [MLPGenerator, MLPDiscriminator]
