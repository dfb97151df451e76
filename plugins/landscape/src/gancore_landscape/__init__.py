"""gancore-landscape: the networks of "The GAN Landscape" study (Kurach et al.) as gancore components.

SNDCGAN, ResNet CIFAR and ResNet19 generators and discriminators, unconditional, with the study's choice of
normalisation in D. The losses and penalties of the study's grid come with the core; spectral norm with gancore-sn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_landscape.networks import (
    COMPONENTS,
    ResNet19Discriminator,
    ResNet19Generator,
    ResNetCIFARDiscriminator,
    ResNetCIFARGenerator,
    SNDCGANDiscriminator,
    SNDCGANGenerator,
)

GANCORE_API_VERSION = 2
"""The core API this release was written against."""

__all__ = [
    "ResNet19Discriminator", "ResNet19Generator", "ResNetCIFARDiscriminator", "ResNetCIFARGenerator",
    "SNDCGANDiscriminator", "SNDCGANGenerator",
]


@hookimpl
def gancore_components() -> Sequence[Any]:
    """The study's generators and discriminators."""
    return COMPONENTS
