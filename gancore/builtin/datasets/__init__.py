"""gancore's built-in data sets: 2-D toys, sklearn digits, CIFAR-10, image folders and dataset zips."""

from __future__ import annotations

from typing import Any

from gancore.builtin.datasets import cifar10, digits, images, toy

COMPONENTS: list[Any] = [
    toy.gaussians_grid,
    toy.gaussians_ring,
    digits.digits,
    digits.StackedDigits,
    cifar10.cifar10,
    images.ImageFolderDataset,
    images.ImageZipDataset,
]
"""Every dataset component of gancore, collected by ``gancore.builtin``."""
