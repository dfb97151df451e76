"""gancore-ada: ADA's non-leaking augmentations on kornia (``ada``) and DiffAugment (``diffaugment``).

Karras et al., "Training Generative Adversarial Networks with Limited Data" (NeurIPS 2020);
Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_ada.ada import ADA
from gancore_ada.diffaugment import DiffAugment

GANCORE_API_VERSION = 2
"""The core API this release was written against."""

__all__ = ["ADA", "DiffAugment"]


@hookimpl
def gancore_components() -> Sequence[Any]:
    """The augmenters ``ada`` and ``diffaugment``."""
    return [ADA, DiffAugment]
