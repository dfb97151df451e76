"""gancore-r3gan: R3GAN's Config E networks (Huang et al., NeurIPS 2024) as gancore components.

The objective (RpGAN + R1 + R2) is the core's ``rpgan``, ``r1`` and ``r2``; this plugin adds the networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_r3gan.networks import COMPONENTS, R3GANDiscriminator, R3GANGenerator

GANCORE_API_VERSION = 2
"""The core API this release was written against."""

__all__ = ["R3GANDiscriminator", "R3GANGenerator"]


@hookimpl
def gancore_components() -> Sequence[Any]:
    """R3GAN's generator and discriminator."""
    return COMPONENTS
