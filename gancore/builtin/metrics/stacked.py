"""Mode coverage on stacked digits, as VEEGAN, PacGAN and R3GAN report it for StackedMNIST.

A classifier trained by this project labels each of the three channels of a generated image; the
triple of digits is one of 1000 modes. Reported: the modes that at least one sample falls in, and
the reverse KL divergence KL(p_gen ‖ uniform) = Σ_m p_m log(1000 p_m), whose floor grows as the
number of samples falls (≈ 0.019 at 26k samples), so the count is reported beside it.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from gancore.builtin.datasets.digits import StackedDigits
from gancore.builtin.metrics import digit_classifier
from gancore.components import component
from gancore.evaluation import Evaluation, FeatureExtractor
from gancore.interfaces import Dataset, Metric
from gancore.weights import file_digest

MODES = 1000


class DigitTriples(FeatureExtractor):
    """Each image's mode: the digits the classifier reads in its R, G and B channels, as d_R·100 + d_G·10 + d_B."""

    name = "digit classifier"

    def __init__(self, device: torch.device) -> None:
        self.network = digit_classifier.load().to(device)
        self.key = f"digit-classifier/sha256:{file_digest(digit_classifier.WEIGHTS)}"

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        n, channels, side, _ = samples.shape
        digits = self.network(samples.reshape(n * channels, 1, side, side)).argmax(1).view(n, channels)
        return {"mode": (digits * torch.tensor([100, 10, 1], device=digits.device)).sum(1, keepdim=True)}


def coverage(modes: Tensor) -> dict[str, float]:
    """Modes covered out of 1000 and the reverse KL to uniform, from each sample's mode (N,)."""
    counts = torch.bincount(modes.long(), minlength=MODES).double()
    p = counts[counts > 0] / counts.sum()
    return {"modes": int((counts > 0).sum()), "reverse_kl": float((p * (p * MODES).log()).sum())}


@component("metric", "stacked_digits_modes")
class StackedDigitsModes(Metric):
    """Modes covered out of 1000 and reverse KL to uniform on stacked digits (the StackedMNIST protocol)."""

    bounds = {"modes": (0.0, float(MODES)), "reverse_kl": (0.0, math.log(MODES))}

    def __init__(self, num_gen: Annotated[int, Field(ge=1, description="generated images; PacGAN and R3GAN "
                                                     "count 26,000")] = 26_000) -> None:
        self.num_gen = num_gen

    def check(self, dataset: Dataset) -> None:
        if not isinstance(dataset, StackedDigits):
            raise ValueError("it labels the digits of the stacked_digits data set (its classifier knows "
                             "scikit-learn's 8×8 digits)")

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        network = evaluation.shared("digit-classifier", lambda: DigitTriples(evaluation.device))
        modes = evaluation.generated(network, self.num_gen)["mode"].rows
        assert modes is not None
        return coverage(modes.squeeze(1).round())
