"""gancore-biggan: BigGAN and BigGAN-deep networks (Brock, Donahue, Simonyan, ICLR 2019) as gancore components.

The networks hold no spectral norm: recipes add it, and BigGAN's orthogonal regularisation, from gancore-sn's
regularizers; the hinge loss is the core's ``hinge``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_biggan import biggan, deep
from gancore_biggan.biggan import BigGANDiscriminator, BigGANGenerator
from gancore_biggan.deep import BigGANDeepDiscriminator, BigGANDeepGenerator

GANCORE_API_VERSION = 2
"""The version of gancore's plugin API this release implements."""

__all__ = ["BigGANDeepDiscriminator", "BigGANDeepGenerator", "BigGANDiscriminator", "BigGANGenerator"]


@hookimpl
def gancore_components() -> Sequence[Any]:
    """BigGAN's and BigGAN-deep's generators and discriminators."""
    return [*biggan.COMPONENTS, *deep.COMPONENTS]
