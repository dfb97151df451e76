"""FD, KID, IS and precision/recall against closed forms, pytorch-fid, scikit-learn and their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_fid.fid_score import calculate_frechet_distance
from sklearn.neighbors import NearestNeighbors

from gancore.builtin.metrics.distances import (
    feature_moments,
    frechet_distance,
    inception_score,
    kernel_distance,
    precision_recall,
)


@settings(max_examples=40, deadline=None)
@given(dim=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_fd_of_gaussians_with_commuting_covariances_is_the_closed_form(dim: int, seed: int) -> None:
    """Same eigenvectors: FD = ‖μ1 − μ2‖² + Σᵢ (√λ1ᵢ − √λ2ᵢ)²."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    l1 = torch.rand(dim, generator=g, dtype=torch.float64) * 4 + 0.01
    l2 = torch.rand(dim, generator=g, dtype=torch.float64) * 4 + 0.01
    mu1, mu2 = torch.randn(dim, generator=g, dtype=torch.float64), torch.randn(dim, generator=g, dtype=torch.float64)
    value = frechet_distance(mu1, q @ torch.diag(l1) @ q.T, mu2, q @ torch.diag(l2) @ q.T)
    expected = float((mu1 - mu2).square().sum() + (l1.sqrt() - l2.sqrt()).square().sum())
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, q @ torch.diag(l1) @ q.T, mu1, q @ torch.diag(l1) @ q.T) == pytest.approx(0, abs=1e-9)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # pytorch-fid's scipy call
@pytest.mark.parametrize("n,dim", [(500, 64), (3000, 256)])
def test_fd_on_features_equals_pytorch_fid(n: int, dim: int) -> None:
    g = torch.Generator().manual_seed(dim)
    mix = torch.randn(dim, dim, generator=g) / math.sqrt(dim)
    a = torch.randn(n, dim, generator=g) @ mix
    b = torch.randn(n, dim, generator=g) @ (mix + 0.1 * torch.randn(dim, dim, generator=g) / math.sqrt(dim)) + 0.2
    mu_a, sigma_a = feature_moments(a)
    mu_b, sigma_b = feature_moments(b)
    np.testing.assert_allclose(sigma_a.numpy(), np.cov(a.double().numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    theirs = calculate_frechet_distance(np.mean(a.double().numpy(), axis=0), np.cov(a.double().numpy(), rowvar=False),
                                        np.mean(b.double().numpy(), axis=0), np.cov(b.double().numpy(), rowvar=False))
    assert frechet_distance(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(theirs, rel=1e-6)


def test_fd_refuses_statistics_of_different_shapes() -> None:
    with pytest.raises(ValueError, match=r"statistics of different shapes: mean \(3,\) and \(4,\)"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))


def test_kid_is_unbiased_and_sees_a_shift() -> None:
    """Over many seeds KID of two samples of one distribution averages to 0 (single values may be negative)."""
    values = []
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        values.append(kernel_distance(torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g),
                                      num_subsets=5, max_subset_size=100, generator=g))
    mean, spread = np.mean(values), np.std(values) / math.sqrt(len(values))
    assert abs(mean) < 3 * spread and min(values) < 0 < max(values)
    g = torch.Generator().manual_seed(0)
    shifted = kernel_distance(torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g) + 0.5,
                              num_subsets=5, max_subset_size=100, generator=g)
    assert shifted > 20 * spread


def test_kid_equals_the_unbiased_mmd_written_out_pair_by_pair() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g) + 0.3

    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() @ b.double() / 5 + 1) ** 3)

    m = 12
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    # one subset of all rows: the draw only permutes them, which the sums do not see
    assert kernel_distance(x, y, num_subsets=1) == pytest.approx(within - 2 * across, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(classes=st.integers(2, 50), per_class=st.integers(1, 6), splits=st.sampled_from([1, 2, 5]))
def test_inception_score_of_uniform_and_of_confident_even_predictions(classes: int, per_class: int,
                                                                     splits: int) -> None:
    n = classes * per_class * splits
    assert inception_score(torch.zeros(n, classes), splits) == pytest.approx((1.0, 0.0), abs=1e-12)
    confident = torch.full((n, classes), -1e4)
    confident[torch.arange(n), torch.arange(n) % classes] = 1e4  # every split holds each class equally often
    mean, std = inception_score(confident, splits)
    assert mean == pytest.approx(classes, rel=1e-9) and std == pytest.approx(0, abs=1e-6)


def test_precision_recall_of_identical_and_of_far_apart_sets() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g)
    assert precision_recall(x, x.clone()) == (1.0, 1.0)
    assert precision_recall(x, x + 100) == (0.0, 0.0)
    # half of the fakes on the data, half far away: precision 1/2; the near half covers most of the reals
    half = torch.cat([x[:150] + 0.01, x[150:] + 100])
    precision, recall = precision_recall(x, half)
    assert precision == pytest.approx(0.5) and 0.3 < recall < 1


def test_precision_recall_equal_scikit_learn_neighbours() -> None:
    """The same k-NN balls computed by scikit-learn, an independent implementation."""
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200, 6, generator=g), torch.randn(150, 6, generator=g) * 1.3 + 0.2

    def covered(queries: np.ndarray, centres: np.ndarray) -> float:
        radii = NearestNeighbors(n_neighbors=4).fit(centres).kneighbors(centres)[0][:, 3]
        distances = np.linalg.norm(queries[:, None] - centres[None], axis=2)
        return float((distances <= radii[None]).any(1).mean())

    precision, recall = precision_recall(real, fake, k=3, chunk=64)
    assert precision == pytest.approx(covered(fake.double().numpy(), real.double().numpy()), abs=1e-12)
    assert recall == pytest.approx(covered(real.double().numpy(), fake.double().numpy()), abs=1e-12)
    assert 0.2 < precision < 1 and 0.2 < recall < 1  # neither trivial


def test_fd_of_identical_rank_deficient_statistics_is_zero_not_round_off_below_it() -> None:
    """12 samples in 768 dimensions, like the kit's FID: the square roots of round-off eigenvalues would add
    about √(ε·λ_max) per dimension."""
    features = torch.randn(12, 768, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 30
    mean, cov = features.mean(0), features.T.cov()
    assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(mean, cov, mean + 1, cov) == pytest.approx(768.0, rel=1e-6)
