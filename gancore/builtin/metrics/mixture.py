"""Metrics of the 2-D toys: modes covered and sample quality on a Gaussian mixture."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from gancore.builtin.datasets.toy import GaussianMixture
from gancore.components import component
from gancore.evaluation import Evaluation, FeatureExtractor
from gancore.interfaces import Dataset, Metric


@component("metric", "mixture_modes")
class MixtureModes(Metric):
    """Modes covered, high-quality share and reverse KL on a 2-D Gaussian mixture (VEEGAN/PacGAN protocol).

    A sample is high quality within ``radius_std``·σ of its nearest centre; a mode is
    covered when at least ``min_share`` of all samples are high quality near it.
    """

    bounds = {"modes": (0.0, math.inf), "high_quality": (0.0, 1.0), "reverse_kl": (0.0, math.inf)}

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

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        dataset = evaluation.dataset
        assert isinstance(dataset, GaussianMixture)
        points = evaluation.generated(Points(), self.num_samples)["points"].rows
        assert points is not None
        distance, nearest = torch.cdist(points, dataset.centers).min(dim=1)
        good = distance < self.radius_std * dataset.std
        counts = torch.bincount(nearest[good], minlength=len(dataset.centers)).double()
        covered = int((counts >= self.min_share * len(points)).sum())
        share = counts / counts.sum().clamp(min=1)
        kl = float((share[share > 0] * (share[share > 0] * len(share)).log()).sum())
        return {"modes": covered, "high_quality": float(good.double().mean()), "reverse_kl": kl}



class Points(FeatureExtractor):
    """The samples themselves: 2-D points are their own features."""

    key = "points"
    name = "points"

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        return {"points": samples.float()}
