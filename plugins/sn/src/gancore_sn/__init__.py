"""gancore-sn: spectral normalisation, BigGAN's orthogonal regularisation and orthogonal initialisation as gancore
regularizers (``spectral_norm``, ``orthogonal``, ``orthogonal_init``).

They act on any network through its conv, linear and embedding layers and parameter names, and know nothing of a
particular architecture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_sn.layers import LayerError
from gancore_sn.orthogonal import COMPONENTS as ORTHOGONAL
from gancore_sn.orthogonal import Orthogonal, OrthogonalInit
from gancore_sn.spectral import COMPONENTS as SPECTRAL
from gancore_sn.spectral import SpectralNorm, SpectralNormWeight, sigmas

GANCORE_API_VERSION = 2
"""The core API this release was written against."""

__all__ = ["LayerError", "Orthogonal", "OrthogonalInit", "SpectralNorm", "SpectralNormWeight", "sigmas"]


@hookimpl
def gancore_components() -> Sequence[Any]:
    """The regularizers spectral_norm, orthogonal and orthogonal_init."""
    return SPECTRAL + ORTHOGONAL
