"""The GAN Landscape study's networks (Kurach et al.), registered as ``sndcgan``, ``resnet_cifar`` and ``resnet19``.

Layer by layer as the study's tables give them; unconditional, as the study is. D's ``normalization`` chooses the
study's BatchNorm or LayerNorm in D; its third option, spectral norm, is gancore-sn's ``spectral_norm`` regularizer,
which a recipe attaches to these networks. Every layer has a bias and PyTorch's default initialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gancore import Discriminator, Generator, component
from gancore_landscape.layers import Normalization, Resample, ResBlock, conv3x3, norm2d

ZDim = Annotated[int, Field(gt=0, description="latent size (the study's 128)")]
Classes = Annotated[int, Field(ge=0, description="must be 0: the study's networks are unconditional")]
Channels = Annotated[int, Field(ge=1, description="image channels")]
GeneratorNorm = Annotated[
    Literal["batch", "none"], Field(description="G's normalisation: the study's BatchNorm, or none")
]
DiscriminatorNorm = Annotated[
    Normalization,
    Field(description="D's normalisation: none (the study's default; add spectral norm with gancore-sn's "
          "spectral_norm regularizer), batch, or layer (per sample over C, H, W; per-channel affine)"),
]
SNDCGANSide = Annotated[int, Field(ge=8, description="image side, a multiple of 8 (the study: 32, 128)")]
CIFARSide = Annotated[int, Field(ge=8, description="image side: 32 only (4×4 doubled three times)")]
ResNet19Side = Annotated[int, Field(ge=8, description="image side: 128 only (4×4 doubled five times)")]

BOTTOM_WIDTH = 512
"""Channels of SNDCGAN's lowest-resolution feature maps, (R/8)×(R/8), in G and D."""
SNDCGAN_D_CONVS = [(3, 1, 64), (4, 2, 128), (3, 1, 128), (4, 2, 256), (3, 1, 256), (4, 2, 512), (3, 1, 512)]
"""SNDCGAN's D as (kernel, stride, output channels), each convolution padded by 1."""
SNDCGAN_G_DECONVS = [(512, 256), (256, 128), (128, 64)]
"""SNDCGAN's G: the 4×4 stride-2 transposed convolutions as (input, output) channels."""


def _unconditional(num_classes: int) -> None:
    if num_classes:
        raise ValueError(f"num_classes = {num_classes}: the GAN Landscape networks are unconditional, as in the "
                         f"study; use num_classes: 0 (the data's labels are then ignored)")


def check_sndcgan(num_classes: int, resolution: int, **_: object) -> None:
    """Raise ValueError for labels or a side SNDCGAN cannot make (it halves the side three times)."""
    _unconditional(num_classes)
    if resolution % 8:
        raise ValueError(f"resolution {resolution} is not a multiple of 8: SNDCGAN's G starts from "
                         f"resolution/8 and doubles it three times")


def _check_fixed_side(name: str, side: int, alternative: str) -> Callable[..., None]:
    """A check for a network made for ``side``×``side`` images only."""

    def check(num_classes: int, resolution: int, **_: object) -> None:
        """Raise ValueError for labels or another side."""
        _unconditional(num_classes)
        if resolution != side:
            raise ValueError(f"resolution {resolution}: {name} is the study's {side}×{side} network; "
                             f"{alternative}")

    return check


check_resnet_cifar = _check_fixed_side("resnet_cifar", 32, "use sndcgan for other sizes, resnet19 for 128")
check_resnet19 = _check_fixed_side("resnet19", 128, "use resnet_cifar for 32, sndcgan for other sizes")


@component("generator", "sndcgan", check=check_sndcgan, examples=[
    {"z_dim": 16, "resolution": 8}, {"z_dim": 16, "resolution": 8, "normalization": "none"}])
class SNDCGANGenerator(Generator):
    """The study's SNDCGAN generator: z → linear → (R/8)²·512, three 4×4 stride-2 deconvolutions, a 3×3 one, tanh.

    Channels 512 → 256 → 128 → 64 → image; BatchNorm (unless ``normalization`` is "none") and ReLU follow the
    linear layer and every deconvolution but the last.
    """

    def __init__(
        self,
        z_dim: ZDim = 128,
        num_classes: Classes = 0,
        resolution: SNDCGANSide = 32,
        channels: Channels = 3,
        normalization: GeneratorNorm = "batch",
    ) -> None:
        super().__init__(z_dim, num_classes, resolution, channels)
        self.bottom = resolution // 8
        self.linear = nn.Linear(z_dim, self.bottom**2 * BOTTOM_WIDTH)
        layers: list[nn.Module] = [norm2d(normalization, BOTTOM_WIDTH), nn.ReLU()]
        for inputs, outputs in SNDCGAN_G_DECONVS:
            layers += [nn.ConvTranspose2d(inputs, outputs, 4, stride=2, padding=1), norm2d(normalization, outputs),
                       nn.ReLU()]
        layers += [nn.ConvTranspose2d(SNDCGAN_G_DECONVS[-1][1], channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return self.body(self.linear(z).view(len(z), BOTTOM_WIDTH, self.bottom, self.bottom))


@component("discriminator", "sndcgan", check=check_sndcgan, examples=[
    {"resolution": 8, "normalization": n} for n in ("none", "batch", "layer")])
class SNDCGANDiscriminator(Discriminator):
    """The study's SNDCGAN discriminator: seven convolutions (3×3 s1 64, 4×4 s2 128, 3×3 s1 128, 4×4 s2 256,
    3×3 s1 256, 4×4 s2 512, 3×3 s1 512), each followed by leaky ReLU (slope 0.1), then linear → 1.

    ``normalization`` (batch or layer) goes between every convolution but the first and its leaky ReLU, as
    DCGAN's discriminator leaves its input layer unnormalised (the study's table does not place it).
    """

    def __init__(
        self,
        num_classes: Classes = 0,
        resolution: SNDCGANSide = 32,
        channels: Channels = 3,
        normalization: DiscriminatorNorm = "none",
    ) -> None:
        super().__init__(num_classes)
        self.batch_dependent = normalization == "batch"
        layers: list[nn.Module] = []
        inputs = channels
        for i, (kernel, stride, outputs) in enumerate(SNDCGAN_D_CONVS):
            layers.append(nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=1))
            if i:
                layers.append(norm2d(normalization, outputs))
            layers.append(nn.LeakyReLU(0.1))
            inputs = outputs
        self.body = nn.Sequential(*layers)
        self.linear = nn.Linear((resolution // 8) ** 2 * BOTTOM_WIDTH, 1)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.linear(self.body(x).flatten(1)).squeeze(1)


class ResNetGenerator(Generator):
    """The study's ResNet generators: z → linear → 4×4×widths[0], one ResBlock up per further width, then norm,
    ReLU, conv3×3 → image, tanh. ``resnet_cifar`` and ``resnet19`` fix the widths."""

    def __init__(
        self, widths: Sequence[int], z_dim: int, num_classes: int, resolution: int, channels: int,
        normalization: Literal["batch", "none"],
    ) -> None:
        side = 4 * 2 ** (len(widths) - 1)
        if resolution != side:
            raise ValueError(f"{len(widths) - 1} ResBlocks up from 4×4 make {side}×{side} images, not {resolution}")
        super().__init__(z_dim, num_classes, resolution, channels)
        self.linear = nn.Linear(z_dim, 4 * 4 * widths[0])
        self.blocks = nn.Sequential(*(ResBlock(a, b, "up", normalization) for a, b in zip(widths, widths[1:])))
        self.norm = norm2d(normalization, widths[-1])
        self.to_image = conv3x3(widths[-1], channels)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        h = self.blocks(self.linear(z).view(len(z), -1, 4, 4))
        return torch.tanh(self.to_image(F.relu(self.norm(h))))


class ResNetDiscriminator(Discriminator):
    """The study's ResNet discriminators: one ResBlock per (width, resampling), then ReLU, the mean over
    positions and linear → 1. ``resnet_cifar`` and ``resnet19`` fix the blocks.

    The first block is like the others, as in the study's table: its main path starts with norm and ReLU on the
    image itself, while its shortcut convolution sees the image unchanged.
    """

    def __init__(
        self, blocks: Sequence[tuple[int, Resample]], num_classes: int, resolution: int, channels: int,
        normalization: Normalization,
    ) -> None:
        downs = sum(resample == "down" for _, resample in blocks)
        if resolution % 2**downs:
            raise ValueError(f"{downs} ResBlocks down need a side divisible by {2**downs}, not {resolution}")
        super().__init__(num_classes)
        self.batch_dependent = normalization == "batch"
        inputs = [channels] + [width for width, _ in blocks[:-1]]
        self.blocks = nn.Sequential(*(ResBlock(a, width, resample, normalization)
                                      for a, (width, resample) in zip(inputs, blocks)))
        self.linear = nn.Linear(blocks[-1][0], 1)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.linear(F.relu(self.blocks(x)).mean(dim=(2, 3))).squeeze(1)


@component("generator", "resnet_cifar", check=check_resnet_cifar, examples=[{"z_dim": 16}])
class ResNetCIFARGenerator(ResNetGenerator):
    """The study's ResNet CIFAR generator: z → linear → 4×4×256 → three ResBlocks up (256) → BN, ReLU, conv3×3
    → image, tanh; 32×32."""

    def __init__(
        self,
        z_dim: ZDim = 128,
        num_classes: Classes = 0,
        resolution: CIFARSide = 32,
        channels: Channels = 3,
        normalization: GeneratorNorm = "batch",
    ) -> None:
        super().__init__([256, 256, 256, 256], z_dim, num_classes, resolution, channels, normalization)


@component("discriminator", "resnet_cifar", check=check_resnet_cifar, examples=[
    {"normalization": "layer"}])
class ResNetCIFARDiscriminator(ResNetDiscriminator):
    """The study's ResNet CIFAR discriminator: two ResBlocks down (128), two ResBlocks (128), ReLU, mean pool,
    linear → 1; 32×32."""

    def __init__(
        self,
        num_classes: Classes = 0,
        resolution: CIFARSide = 32,
        channels: Channels = 3,
        normalization: DiscriminatorNorm = "none",
    ) -> None:
        super().__init__([(128, "down"), (128, "down"), (128, "none"), (128, "none")], num_classes, resolution,
                         channels, normalization)


@component("generator", "resnet19", check=check_resnet19, examples=[{"z_dim": 16}])
class ResNet19Generator(ResNetGenerator):
    """The study's ResNet19 generator: z → linear → 4×4×512 → ResBlocks up 512, 256, 256, 128, 64 → BN, ReLU,
    conv3×3 → image, tanh; 128×128."""

    def __init__(
        self,
        z_dim: ZDim = 128,
        num_classes: Classes = 0,
        resolution: ResNet19Side = 128,
        channels: Channels = 3,
        normalization: GeneratorNorm = "batch",
    ) -> None:
        super().__init__([512, 512, 256, 256, 128, 64], z_dim, num_classes, resolution, channels, normalization)


@component("discriminator", "resnet19", check=check_resnet19, examples=[{}])
class ResNet19Discriminator(ResNetDiscriminator):
    """The study's ResNet19 discriminator: ResBlocks down 64, 128, 256, 256, 512, 512 (128 → 2×2), ReLU, mean
    pool, linear → 1; 128×128."""

    def __init__(
        self,
        num_classes: Classes = 0,
        resolution: ResNet19Side = 128,
        channels: Channels = 3,
        normalization: DiscriminatorNorm = "none",
    ) -> None:
        super().__init__([(w, "down") for w in (64, 128, 256, 256, 512, 512)], num_classes, resolution, channels,
                         normalization)


COMPONENTS = [
    SNDCGANGenerator, SNDCGANDiscriminator, ResNetCIFARGenerator, ResNetCIFARDiscriminator, ResNet19Generator,
    ResNet19Discriminator,
]
