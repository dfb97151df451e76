"""2-D Gaussian mixtures, the standard toys for mode collapse (VEEGAN, PacGAN, unrolled GANs)."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from gancore.components import component
from gancore.interfaces import Dataset


class GaussianMixture(Dataset):
    """A fixed sample of an equal-weight mixture of isotropic Gaussians in the plane.

    ``centers`` (K, 2) and ``std`` are public so that metrics can count the modes.
    """

    in_memory = True

    def __init__(self, centers: Tensor, std: float, size: int, seed: int) -> None:
        self.centers = centers.float()
        self.std = std
        g = torch.Generator().manual_seed(seed)
        which = torch.randint(len(centers), (size,), generator=g)
        self.points = self.centers[which] + std * torch.randn(size, 2, generator=g)

    @property
    def shape(self) -> tuple[int, ...]:
        return (2,)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.points[index], 0

    def __getitems__(self, indices: list[int]) -> list[tuple[Tensor, int]]:
        """Batched fetch for DataLoader: one gather instead of one Python call per point."""
        return list(zip(self.points[indices].unbind(), [0] * len(indices)))


@component("dataset", "gaussians_grid")
def gaussians_grid(
    size: Annotated[int, Field(gt=0, description="points drawn once and held in memory")] = 100_000,
    std: Annotated[float, Field(gt=0)] = 0.05,
    spacing: Annotated[float, Field(gt=0)] = 2.0,
    seed: int = 0,
) -> GaussianMixture:
    """25 Gaussians on a 5×5 grid, centres 2 apart from −4 to 4, σ = 0.05 (VEEGAN, PacGAN)."""
    axis = (torch.arange(5) - 2) * spacing
    centers = torch.cartesian_prod(axis, axis)
    return GaussianMixture(centers, std, size, seed)


@component("dataset", "gaussians_ring")
def gaussians_ring(
    modes: Annotated[int, Field(ge=2)] = 8,
    radius: Annotated[float, Field(gt=0)] = 2.0,
    std: Annotated[float, Field(gt=0)] = 0.02,
    size: Annotated[int, Field(gt=0)] = 100_000,
    seed: int = 0,
) -> GaussianMixture:
    """8 Gaussians evenly spaced on a circle of radius 2, σ = 0.02 (unrolled GANs)."""
    angles = torch.arange(modes) * (2 * math.pi / modes)
    centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture(centers, std, size, seed)
