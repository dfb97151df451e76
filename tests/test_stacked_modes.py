"""Mode coverage on stacked digits: all 1000 modes for the data itself, one for a generator of one image."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import gancore
from gancore.builtin.datasets.digits import StackedDigits
from gancore.builtin.metrics.stacked import DigitTriples, coverage
from gancore.evaluation import Evaluation


class Replay(gancore.Generator):
    """Draws items of a data set uniformly with replacement: Φ(z₀) picks the item."""

    def __init__(self, data: StackedDigits, only: int | None = None) -> None:
        super().__init__(z_dim=1, num_classes=0, resolution=data.shape[-1], channels=3)
        self.data, self.only = data, only

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        index = (torch.special.ndtr(z[:, 0]) * len(self.data)).long().clamp(max=len(self.data) - 1)
        if self.only is not None:
            index = torch.full_like(index, self.only)
        images = torch.stack([self.data[i][0] for i in index.tolist()])
        return images.float() / 127.5 - 1


def test_coverage_counts_modes_and_the_reverse_kl_to_uniform() -> None:
    assert coverage(torch.arange(1000)) == {"modes": 1000, "reverse_kl": pytest.approx(0.0, abs=1e-12)}
    assert coverage(torch.full((50,), 7)) == {"modes": 1, "reverse_kl": pytest.approx(math.log(1000))}
    half = coverage(torch.arange(500).repeat(3))  # half the modes, evenly: KL = log 2
    assert half == {"modes": 500, "reverse_kl": pytest.approx(math.log(2))}


def test_the_classifier_reads_the_data_s_own_modes() -> None:
    data = StackedDigits(size=3000, resolution=16, seed=1)
    modes = DigitTriples(torch.device("cpu"))(data.digits[data.triplets].squeeze(2))["mode"].squeeze(1)
    accuracy = float((modes == data.modes).double().mean())
    assert accuracy > 0.93  # three digits right at once, ~0.985³ (the classifier's held-out accuracy)


def test_the_data_covers_every_mode_and_one_image_covers_one() -> None:
    data = StackedDigits(size=50_000)
    truth = coverage(data.modes[:26_000])
    assert truth["modes"] == 1000 and truth["reverse_kl"] < 0.03  # the floor at 26k samples: ≈ 0.019
    metric = gancore.create("metric", "stacked_digits_modes")
    found = metric.compute(Evaluation(Replay(data), data, batch_size=1000, progress=False))
    assert found["modes"] == 1000 and found["reverse_kl"] < 0.05
    collapsed = metric.compute(Evaluation(Replay(data, only=0), data, batch_size=1000, progress=False))
    assert collapsed == {"modes": 1, "reverse_kl": pytest.approx(math.log(1000))}


def test_it_measures_stacked_digits_only() -> None:
    with pytest.raises(ValueError, match="stacked_digits"):
        gancore.create("metric", "stacked_digits_modes").check(gancore.create("dataset", "digits"))
