"""BigGAN's generator and discriminator (Brock et al., ICLR 2019, App. B), registered as ``biggan``.

Defaults are the paper's 128² ImageNet networks (ch 96, shared class embedding of 128, hierarchical z of 120,
attention at 64², orthogonal initialisation): 70,433,988 and 87,982,370 parameters, as the authors' PyTorch code.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gancore import Discriminator, Generator, component
from gancore_biggan.architecture import (
    Block, check_discriminator, check_generator, default_z_dim, discriminator_blocks, generator_blocks,
)
from gancore_biggan.layers import (
    ConditionalBatchNorm, ProjectionHead, SelfAttention, attention_index, initialise, labels, output_layer, upsample,
)
from gancore_biggan.params import (
    Attention, BNEps, Ch, Channels, Classes, InitScheme, Resolution, SharedDim, StandingStats, ZDim,
)


class UpBlock(nn.Module):
    """BigGAN's "ResBlock up": ReLU(CBN) → 2× nearest → 3×3 conv → ReLU(CBN) → 3×3 conv, plus a learned 1×1 skip.

    The skip's 1×1 convolution runs before the upsampling, not after as in the authors' code: both orders give the
    same result (nearest-neighbour copies commute with a per-pixel linear map), this one at a quarter of the cost.
    """

    def __init__(self, block: Block, cond_dim: int, num_classes: int, eps: float) -> None:
        super().__init__()
        self.bn1 = ConditionalBatchNorm(block.in_channels, cond_dim, num_classes, eps)
        self.conv1 = nn.Conv2d(block.in_channels, block.out_channels, 3, padding=1)
        self.bn2 = ConditionalBatchNorm(block.out_channels, cond_dim, num_classes, eps)
        self.conv2 = nn.Conv2d(block.out_channels, block.out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(block.in_channels, block.out_channels, 1)

    def forward(self, x: Tensor, y: Tensor | None, c: Tensor | None) -> Tensor:
        h = self.conv1(upsample(F.relu(self.bn1(x, y, c))))
        h = self.conv2(F.relu(self.bn2(h, y, c)))
        return h + upsample(self.shortcut(x))


class DownBlock(nn.Module):
    """BigGAN's "ResBlock down": (ReLU) → 3×3 conv → ReLU → 3×3 conv → 2×2 average pool, plus a skip.

    The skip is a learned 1×1 convolution when the block changes the channels or downsamples, else the identity.
    The first block has no leading ReLU (its input is the image). The skip is always pooled before its convolution
    (the authors' order in the first block; in the others they convolve first, which gives the same result because
    average pooling and a 1×1 convolution commute).
    """

    def __init__(self, block: Block, preactivation: bool) -> None:
        super().__init__()
        self.preactivation = preactivation
        self.downsample = block.resample
        self.conv1 = nn.Conv2d(block.in_channels, block.out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(block.out_channels, block.out_channels, 3, padding=1)
        learnable = block.in_channels != block.out_channels or block.resample
        self.shortcut = nn.Conv2d(block.in_channels, block.out_channels, 1) if learnable else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        return h + (self.shortcut(x) if self.shortcut is not None else x)


@component("generator", "biggan", check=check_generator, examples=[
    {"resolution": 32, "ch": 4, "num_classes": 3, "shared_dim": 8, "attention": 16},
    {"resolution": 32, "ch": 4, "num_classes": 0, "shared_dim": 0, "hierarchical": False, "z_dim": 16,
     "attention": None}])
class BigGANGenerator(Generator):
    """BigGAN's generator: linear to 4×4×16ch, ResBlock-up stages with conditional BN, attention, BN-ReLU-conv-tanh.

    Each conditional BN reads y = [shared class embedding, z chunk] with hierarchical z (z split into one chunk for
    the input layer and one per block); without hierarchical z the input layer reads all of z and y is the shared
    embedding; without a shared embedding (``shared_dim`` 0) each conditional BN embeds the class itself.
    """

    cross_replica_batchnorm = True

    def __init__(
        self,
        ch: Ch = 96,
        resolution: Resolution = 128,
        num_classes: Classes = 1000,
        z_dim: ZDim = None,
        shared_dim: SharedDim = 128,
        hierarchical: Annotated[bool, Field(description="split z into one chunk per block and one for the input "
                                                        "layer (skip-z)")] = True,
        attention: Attention = 64,
        init: InitScheme = "ortho",
        bn_eps: BNEps = 1e-5,
        standing_stats: StandingStats = 0,
        channels: Channels = 3,
    ) -> None:
        check_generator(ch=ch, resolution=resolution, num_classes=num_classes, z_dim=z_dim, shared_dim=shared_dim,
                        hierarchical=hierarchical, attention=attention)
        z_dim = z_dim or default_z_dim(resolution, hierarchical)
        super().__init__(z_dim, num_classes, resolution, channels)
        self.standing_statistics = standing_stats
        blocks = generator_blocks(ch, resolution)
        self.hierarchical = hierarchical
        self.chunk = z_dim // (len(blocks) + 1) if hierarchical else 0
        self.shared = nn.Embedding(num_classes, shared_dim) if shared_dim else None
        per_class = 0 if shared_dim else num_classes
        self.linear = nn.Linear(self.chunk or z_dim, blocks[0].in_channels * 4 * 4)
        self.blocks = nn.ModuleList(UpBlock(b, shared_dim + self.chunk, per_class, bn_eps) for b in blocks)
        self.attention_after = attention_index([b.side for b in blocks], attention)
        self.attention = SelfAttention(blocks[self.attention_after].out_channels) \
            if self.attention_after is not None else None
        self.output = output_layer(blocks[-1].out_channels, channels, bn_eps)
        initialise(self, init)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        c = labels(c, self.num_classes)
        embedded = self.shared(c) if self.shared is not None else None
        if self.hierarchical:
            first, *chunks = z.split(self.chunk, dim=1)
            ys = [chunk if embedded is None else torch.cat([embedded, chunk], dim=1) for chunk in chunks]
        else:
            first, ys = z, [embedded] * len(self.blocks)
        h = self.linear(first).view(len(z), -1, 4, 4)
        for i, (block, y) in enumerate(zip(self.blocks, ys, strict=True)):
            h = block(h, y, c)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return torch.tanh(self.output(h)).float()


@component("discriminator", "biggan", check=check_discriminator, examples=[
    {"resolution": 32, "ch": 4, "num_classes": 3, "attention": 16}])
class BigGANDiscriminator(Discriminator):
    """BigGAN's discriminator: ResBlock-down stages, attention, ReLU, global sum pooling, linear + class projection."""

    def __init__(
        self,
        ch: Ch = 96,
        resolution: Resolution = 128,
        num_classes: Classes = 1000,
        attention: Attention = 64,
        init: InitScheme = "ortho",
        channels: Channels = 3,
    ) -> None:
        check_discriminator(ch=ch, resolution=resolution, attention=attention, channels=channels)
        super().__init__(num_classes)
        blocks = discriminator_blocks(ch, resolution, channels)
        self.blocks = nn.ModuleList(DownBlock(b, preactivation=i > 0) for i, b in enumerate(blocks))
        self.attention_after = attention_index([b.side for b in blocks], attention)
        self.attention = SelfAttention(blocks[self.attention_after].out_channels) \
            if self.attention_after is not None else None
        self.head = ProjectionHead(blocks[-1].out_channels, num_classes)
        initialise(self, init)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        c = labels(c, self.num_classes)
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return self.head(F.relu(h).sum(dim=(2, 3)), c)


COMPONENTS = [BigGANGenerator, BigGANDiscriminator]
