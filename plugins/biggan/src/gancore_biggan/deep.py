"""BigGAN-deep's generator and discriminator (Brock et al., ICLR 2019, App. B), registered as ``biggan_deep``.

Bottleneck residual blocks, two per resolution, with identity skips: G's skip drops channels, D's concatenates
new ones from a 1×1 convolution. G feeds the whole z, joined to the shared class embedding, to the input layer and
every conditional BN. Defaults are the paper's 128² ImageNet networks (ch 128, z 128, shared embedding 128, attention
at 64², orthogonal initialisation): 50,244,484 and 34,590,210 parameters, as the authors' PyTorch code.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gancore import Discriminator, Generator, component
from gancore_biggan.architecture import (
    DEEP_RATIO, FLAT_Z_DIM, check_deep_discriminator, check_deep_generator, deep_discriminator_blocks,
    generator_blocks,
)
from gancore_biggan.layers import (
    ConditionalBatchNorm, ProjectionHead, SelfAttention, attention_index, initialise, labels, output_layer, upsample,
)
from gancore_biggan.params import (
    Attention, BNEps, Ch, Channels, Classes, InitScheme, Resolution, SharedDim, StandingStats,
)

BLOCKS_PER_STAGE = 2
"""BigGAN-deep's G_depth and D_depth."""


class DeepUpBlock(nn.Module):
    """CBN-ReLU-1×1 (÷4) → CBN-ReLU (→ 2× nearest) → 3×3 → CBN-ReLU-3×3 → CBN-ReLU-1×1 (→ out), plus an identity skip.

    The skip keeps the first ``out_channels`` channels of the input (upsampled along with the residual branch).
    """

    def __init__(self, in_channels: int, out_channels: int, resample: bool, cond_dim: int, num_classes: int,
                 eps: float) -> None:
        super().__init__()
        hidden = in_channels // DEEP_RATIO
        self.out_channels = out_channels
        self.resample = resample
        self.bn1 = ConditionalBatchNorm(in_channels, cond_dim, num_classes, eps)
        self.conv1 = nn.Conv2d(in_channels, hidden, 1)
        self.bn2 = ConditionalBatchNorm(hidden, cond_dim, num_classes, eps)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.bn3 = ConditionalBatchNorm(hidden, cond_dim, num_classes, eps)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.bn4 = ConditionalBatchNorm(hidden, cond_dim, num_classes, eps)
        self.conv4 = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: Tensor, y: Tensor | None, c: Tensor | None) -> Tensor:
        h = F.relu(self.bn2(self.conv1(F.relu(self.bn1(x, y, c))), y, c))
        skip = x[:, :self.out_channels]
        if self.resample:
            h, skip = upsample(h), upsample(skip)
        h = self.conv3(F.relu(self.bn3(self.conv2(h), y, c)))
        return self.conv4(F.relu(self.bn4(h, y, c))) + skip


class DeepDownBlock(nn.Module):
    """ReLU-1×1 (→ out/4) → ReLU-3×3 → ReLU-3×3 → ReLU (→ 2×2 average pool) → 1×1 (→ out), plus a skip.

    The skip is the (pooled) input, with ``out − in`` channels from a learned 1×1 convolution of it concatenated
    when the block widens.
    """

    def __init__(self, in_channels: int, out_channels: int, resample: bool) -> None:
        super().__init__()
        hidden = out_channels // DEEP_RATIO
        self.resample = resample
        self.conv1 = nn.Conv2d(in_channels, hidden, 1)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv4 = nn.Conv2d(hidden, out_channels, 1)
        widens = out_channels != in_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels - in_channels, 1) if widens else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(F.relu(x)))))))
        if self.resample:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        if self.shortcut is not None:
            x = torch.cat([x, self.shortcut(x)], dim=1)
        return self.conv4(h) + x


@component("generator", "biggan_deep", check=check_deep_generator, examples=[
    {"resolution": 32, "ch": 4, "num_classes": 3, "z_dim": 16, "shared_dim": 8, "attention": 16},
    {"resolution": 32, "ch": 4, "num_classes": 0, "z_dim": 16, "shared_dim": 0, "attention": None}])
class BigGANDeepGenerator(Generator):
    """BigGAN-deep's generator: linear([class embedding, z]) to 4×4×16ch, two bottleneck blocks per resolution.

    Each conditional BN reads y = [shared class embedding, z]; without a shared embedding (``shared_dim`` 0) it reads
    z and embeds the class itself. The second block of each resolution upsamples and narrows.
    """

    cross_replica_batchnorm = True

    def __init__(
        self,
        ch: Ch = 128,
        resolution: Resolution = 128,
        num_classes: Classes = 1000,
        z_dim: Annotated[int, Field(gt=0, description="latent size, all of it fed to every block")] = FLAT_Z_DIM,
        shared_dim: SharedDim = 128,
        attention: Attention = 64,
        init: InitScheme = "ortho",
        bn_eps: BNEps = 1e-5,
        standing_stats: StandingStats = 0,
        channels: Channels = 3,
    ) -> None:
        check_deep_generator(ch=ch, resolution=resolution, num_classes=num_classes, shared_dim=shared_dim,
                             attention=attention)
        super().__init__(z_dim, num_classes, resolution, channels)
        self.standing_statistics = standing_stats
        stages = generator_blocks(ch, resolution)
        self.shared = nn.Embedding(num_classes, shared_dim) if shared_dim else None
        per_class = 0 if shared_dim else num_classes
        cond_dim = shared_dim + z_dim
        self.linear = nn.Linear(cond_dim, stages[0].in_channels * 4 * 4)
        self.blocks = nn.ModuleList(
            DeepUpBlock(s.in_channels, s.in_channels if k == 0 else s.out_channels, k == BLOCKS_PER_STAGE - 1,
                        cond_dim, per_class, bn_eps)
            for s in stages for k in range(BLOCKS_PER_STAGE)
        )
        stage = attention_index([s.side for s in stages], attention)
        self.attention_after = None if stage is None else BLOCKS_PER_STAGE * stage + BLOCKS_PER_STAGE - 1
        self.attention = SelfAttention(stages[stage].out_channels) if stage is not None else None
        self.output = output_layer(stages[-1].out_channels, channels, bn_eps)
        initialise(self, init)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        c = labels(c, self.num_classes)
        y = z if self.shared is None else torch.cat([self.shared(c), z], dim=1)
        h = self.linear(y).view(len(z), -1, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, y, c)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return torch.tanh(self.output(h)).float()


@component("discriminator", "biggan_deep", check=check_deep_discriminator, examples=[
    {"resolution": 32, "ch": 4, "num_classes": 3, "attention": 16}])
class BigGANDeepDiscriminator(Discriminator):
    """BigGAN-deep's discriminator: a 3×3 stem, two bottleneck blocks per resolution, attention, ReLU, sum pooling,
    linear + class projection. The first block of each resolution downsamples and widens."""

    def __init__(
        self,
        ch: Ch = 128,
        resolution: Resolution = 128,
        num_classes: Classes = 1000,
        attention: Attention = 64,
        init: InitScheme = "ortho",
        channels: Channels = 3,
    ) -> None:
        check_deep_discriminator(ch=ch, resolution=resolution, attention=attention)
        super().__init__(num_classes)
        stem, stages = deep_discriminator_blocks(ch, resolution)
        self.stem = nn.Conv2d(channels, stem, 3, padding=1)
        self.blocks = nn.ModuleList(
            DeepDownBlock(s.in_channels if k == 0 else s.out_channels, s.out_channels, s.resample and k == 0)
            for s in stages for k in range(BLOCKS_PER_STAGE)
        )
        stage = attention_index([s.side for s in stages], attention)
        self.attention_after = None if stage is None else BLOCKS_PER_STAGE * stage + BLOCKS_PER_STAGE - 1
        self.attention = SelfAttention(stages[stage].out_channels) if stage is not None else None
        self.head = ProjectionHead(stages[-1].out_channels, num_classes)
        initialise(self, init)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        c = labels(c, self.num_classes)
        h = self.stem(x)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after and self.attention is not None:
                h = self.attention(h)
        return self.head(F.relu(h).sum(dim=(2, 3)), c)


COMPONENTS = [BigGANDeepGenerator, BigGANDeepDiscriminator]
