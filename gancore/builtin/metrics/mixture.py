"""Metrics of the 2-D toys: modes covered and sample quality on a Gaussian mixture."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from gancore.builtin.datasets.toy import GaussianMixture
from gancore.components import component
from gancore.interfaces import Dataset, Metric, Sampler


@component("metric", "mixture_modes")
class MixtureModes(Metric):
    """Modes covered, high-quality share and reverse KL on a 2-D Gaussian mixture (VEEGAN/PacGAN protocol).

    A sample is high quality within ``radius_std``·σ of its nearest centre; a mode is
    covered when at least ``min_share`` of all samples are high quality near it.
    """

    def __init__(
        self,
        num_samples: Annotated[int, Field(gt=0)] = 10_000,
        radius_std: Annotated[float, Field(gt=0)] = 3.0,
        min_share: Annotated[float, Field(ge=0, lt=1)] = 0.01,
    ) -> None:
        self.num_samples = num_samples
        self.radius_std = radius_std
        self.min_share = min_share

    def check(self, dataset: Dataset) -> None:
        if not isinstance(dataset, GaussianMixture):
            raise ValueError("mixture_modes measures a Gaussian-mixture data set (gaussians_grid, gaussians_ring)")

    def compute(self, sampler: Sampler, dataset: Dataset) -> dict[str, float]:
        assert isinstance(dataset, GaussianMixture)
        points = torch.cat([b.float().cpu() for b in sampler.batches(self.num_samples)])
        distance, nearest = torch.cdist(points, dataset.centers).min(dim=1)
        good = distance < self.radius_std * dataset.std
        counts = torch.bincount(nearest[good], minlength=len(dataset.centers)).double()
        covered = int((counts >= self.min_share * len(points)).sum())
        share = counts / counts.sum().clamp(min=1)
        kl = float((share[share > 0] * (share[share > 0] * len(share)).log()).sum())
        return {"modes": covered, "high_quality": float(good.double().mean()), "reverse_kl": kl}

