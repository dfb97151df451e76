"""R3GAN's Config E generator and discriminator (Huang et al., NeurIPS 2024), registered as ``r3gan``.

Both networks are described per resolution stage from 4×4 up to the output (the same lists for G
and D; D runs them in reverse). Defaults are the paper's CIFAR-10 networks, unconditional.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor, nn

from gancore import Discriminator, Generator, component
from gancore_r3gan.layers import (
    Conv, DiscriminativeBasis, Downsample, GenerativeBasis, Linear, ResidualBlock, Stage, Upsample,
)

PerStage = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
Widths = Annotated[PerStage, Field(description="channels per stage, from 4×4 up to the output resolution")]
Cardinalities = Annotated[PerStage, Field(description="groups of each block's 3×3 convolution, per stage")]
Blocks = Annotated[PerStage, Field(description="residual blocks per stage")]
Expansion = Annotated[int, Field(gt=0, description="inverted-bottleneck factor: channels inside a block ÷ outside")]
Resolution = Annotated[int, Field(ge=8, le=1024, description="image side, a power of two; one stage per doubling from 4")]
Channels = Annotated[int, Field(description="image channels", ge=1, le=4)]
Classes = Annotated[int, Field(ge=0, description="0 for an unconditional network")]
BF16Stages = Annotated[int, Field(ge=0, description="how many of the highest-resolution stages compute in bfloat16")]
KernelSize = Annotated[int, Field(ge=1, description="side of the grouped convolution, odd")]

CIFAR10_WIDTHS = [768, 768, 768, 768]
CIFAR10_CARDINALITIES = [96, 96, 96, 96]
CIFAR10_BLOCKS = [2, 2, 2, 2]


def check_stages(
    widths: list[int], cardinalities: list[int], blocks: list[int], expansion: int, resolution: int,
    bf16_stages: int, kernel_size: int, **_: object,
) -> None:
    """Raise ValueError unless the per-stage lists fit each other and the resolution."""
    stages = round(math.log2(resolution)) - 1
    if 2 ** (stages + 1) != resolution:
        raise ValueError(f"resolution {resolution} is not a power of two")
    for name, values in (("widths", widths), ("cardinalities", cardinalities), ("blocks", blocks)):
        if len(values) != stages:
            raise ValueError(f"{name} has {len(values)} stages; resolution {resolution} needs {stages} "
                             f"(one per resolution from 4×4 to {resolution}×{resolution})")
    for i, (width, groups) in enumerate(zip(widths, cardinalities)):
        if width * expansion % groups:
            raise ValueError(f"stage {i}: cardinality {groups} does not divide the block's inner width "
                             f"{width}×{expansion} = {width * expansion}")
    if bf16_stages > stages:
        raise ValueError(f"bf16_stages = {bf16_stages} but the network has only {stages} stages")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size = {kernel_size} should be odd")


def _stage_dtypes(stages: int, bf16_stages: int) -> list[torch.dtype]:
    """Per stage from 4×4 upward: fp32, then bfloat16 for the ``bf16_stages`` highest resolutions."""
    return [torch.bfloat16 if i >= stages - bf16_stages else torch.float32 for i in range(stages)]


def _blocks(width: int, cardinality: int, count: int, expansion: int, kernel_size: int, total: int) -> list[nn.Module]:
    return [ResidualBlock(width, cardinality, expansion, kernel_size, total) for _ in range(count)]


def _classes(c: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """One-hot labels: the class embeddings are linear maps of them, as in the authors' networks."""
    return nn.functional.one_hot(c, num_classes).to(dtype)


@component("generator", "r3gan", check=check_stages, examples=[
    {"widths": [16, 16], "cardinalities": [4, 4], "blocks": [1, 1], "resolution": 8, "z_dim": 16, "embed_dim": 8},
    {"widths": [16, 16], "cardinalities": [4, 4], "blocks": [1, 1], "resolution": 8, "z_dim": 16, "bf16_stages": 1}])
class R3GANGenerator(Generator):
    """R3GAN's Config E generator: a 4×4 learned basis modulated by z (and the class), then residual stages.

    Each stage after the first upsamples with the [1, 3, 3, 1] low-pass filter and runs ResNeXt-style
    inverted-bottleneck blocks; no normalisation, no output squashing; fix-up initialisation.
    """

    def __init__(
        self,
        widths: Widths = CIFAR10_WIDTHS,
        cardinalities: Cardinalities = CIFAR10_CARDINALITIES,
        blocks: Blocks = CIFAR10_BLOCKS,
        expansion: Expansion = 2,
        z_dim: Annotated[int, Field(gt=0)] = 64,
        num_classes: Classes = 0,
        embed_dim: Annotated[int, Field(gt=0, description="size of the class embedding joined to z")] = 64,
        resolution: Resolution = 32,
        channels: Channels = 3,
        bf16_stages: BF16Stages = 0,
        kernel_size: KernelSize = 3,
    ) -> None:
        super().__init__(z_dim, num_classes, resolution, channels)
        total = sum(blocks)
        dtypes = _stage_dtypes(len(widths), bf16_stages)
        self.embed = Linear(num_classes, embed_dim) if num_classes else None
        inputs = z_dim + (embed_dim if num_classes else 0)
        stages = []
        for i, (width, groups, count) in enumerate(zip(widths, cardinalities, blocks)):
            transition = GenerativeBasis(inputs, width) if i == 0 else Upsample(widths[i - 1], width)
            stages.append(Stage(transition, *_blocks(width, groups, count, expansion, kernel_size, total),
                                dtype=dtypes[i]))
        self.stages = nn.Sequential(*stages)
        self.to_image = Conv(widths[-1], channels, 1)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(_classes(c, self.num_classes, z.dtype))], dim=1)
        return self.to_image(self.stages(z)).float()


@component("discriminator", "r3gan", check=check_stages, examples=[
    {"widths": [16, 16], "cardinalities": [4, 4], "blocks": [1, 1], "resolution": 8}])
class R3GANDiscriminator(Discriminator):
    """R3GAN's Config E discriminator: residual stages downsampling to 4×4, a 4×4 depthwise basis, a linear head.

    Conditional by projection: the head's vector is dotted with a linear embedding of the class.
    Mirror of the generator; per-stage lists are given from 4×4 upward, like the generator's.
    """

    def __init__(
        self,
        widths: Widths = CIFAR10_WIDTHS,
        cardinalities: Cardinalities = CIFAR10_CARDINALITIES,
        blocks: Blocks = CIFAR10_BLOCKS,
        expansion: Expansion = 2,
        num_classes: Classes = 0,
        embed_dim: Annotated[
            int | None, Field(gt=0, description="size of the projection embedding; default the 4×4 stage's width")
        ] = None,
        resolution: Resolution = 32,
        channels: Channels = 3,
        bf16_stages: BF16Stages = 0,
        kernel_size: KernelSize = 3,
    ) -> None:
        super().__init__(num_classes)
        total = sum(blocks)
        dtypes = _stage_dtypes(len(widths), bf16_stages)
        embed_dim = embed_dim or widths[0]
        self.from_image = Conv(channels, widths[-1], 1)
        stages = []
        for i in reversed(range(len(widths))):
            body = _blocks(widths[i], cardinalities[i], blocks[i], expansion, kernel_size, total)
            end = DiscriminativeBasis(widths[0], embed_dim if num_classes else 1) if i == 0 \
                else Downsample(widths[i], widths[i - 1])
            stages.append(Stage(*body, end, dtype=dtypes[i]))
        self.stages = nn.Sequential(*stages)
        self.embed = Linear(num_classes, embed_dim, gain=1 / math.sqrt(embed_dim)) if num_classes else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.stages(self.from_image(x.to(self.stages[0].dtype))).float()
        if self.embed is not None:
            return (h * self.embed(_classes(c, self.num_classes, h.dtype))).sum(dim=1)
        return h.squeeze(1)


COMPONENTS = [R3GANGenerator, R3GANDiscriminator]
