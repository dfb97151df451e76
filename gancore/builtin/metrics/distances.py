"""Distances and scores between sets of features: FD (FID's formula), KID, IS and precision/recall.

Each takes feature (or logit) matrices, one row per image, whatever network embedded them; the
metric components pair them with a network. Everything is computed in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def feature_moments(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and covariance (divided by N − 1) of features (N, D), in float64."""
    x = features.detach().double()
    if len(x) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(x)}")
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def _numerical_zeros_cleared(values: Tensor) -> Tensor:
    """Eigenvalues of a PSD matrix with those below its numerical rank tolerance (largest · size · machine ε)
    set to 0: their square roots would add round-off of order √(ε·λ_max) per dimension, which dominates the
    distance when there are fewer samples than dimensions."""
    tolerance = values.abs().max() * len(values) * torch.finfo(values.dtype).eps
    return torch.where(values > tolerance, values, torch.zeros_like(values))


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * _numerical_zeros_cleared(values).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor, eps: float = 1e-6) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1 Σ2)^½), the Fréchet distance of two Gaussians (FID's formula).

    Tr((Σ1 Σ2)^½) is computed as Tr((Σ1^½ Σ2 Σ1^½)^½): the same eigenvalues, of a symmetric matrix, so
    no complex parts arise. If the result is not finite, ``eps``·I is added to both covariances. A result
    below 0, which only round-off gives (identical statistics), is returned as 0.
    """
    mu1, mu2, sigma1, sigma2 = (t.detach().double() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"statistics of different shapes: mean {tuple(mu1.shape)} and {tuple(mu2.shape)}, "
                         f"covariance {tuple(sigma1.shape)} and {tuple(sigma2.shape)}")

    def distance(s1: Tensor, s2: Tensor) -> float:
        root = _sqrt_psd(s1)
        cross = _numerical_zeros_cleared(torch.linalg.eigvalsh(root @ s2 @ root)).sqrt().sum()
        return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * cross)

    value = distance(sigma1, sigma2)
    if not math.isfinite(value):
        offset = eps * torch.eye(len(mu1), dtype=torch.float64)
        value = distance(sigma1 + offset, sigma2 + offset)
    return max(value, 0.0)


def kernel_distance(real: Tensor, fake: Tensor, num_subsets: int = 100, max_subset_size: int = 1000,
                    generator: torch.Generator | None = None) -> float:
    """KID: the unbiased MMD² with the kernel k(x, y) = (xᵀy / D + 1)³, averaged over random subsets.

    Each subset draws m = min(len(real), len(fake), ``max_subset_size``) rows of each set without
    replacement; MMD² = Σ_{i≠j} (k(xᵢ, xⱼ) + k(yᵢ, yⱼ)) / (m(m − 1)) − 2 Σ_{i,j} k(xᵢ, yⱼ) / m².
    """
    x_all, y_all = real.detach().double(), fake.detach().double()
    m = min(len(x_all), len(y_all), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples of each set, got {len(x_all)} and {len(y_all)}")
    dim = x_all.shape[1]

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return (a @ b.T / dim + 1) ** 3

    total = 0.0
    for _ in range(num_subsets):
        x = x_all[torch.randperm(len(x_all), generator=generator)[:m]]
        y = y_all[torch.randperm(len(y_all), generator=generator)[:m]]
        kxx, kyy = kernel(x, x), kernel(y, y)
        within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total += float(within - 2 * kernel(x, y).sum() / m**2)
    return total / num_subsets


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) on each of ``splits`` consecutive parts: their mean and (population) std."""
    if len(logits) < splits:
        raise ValueError(f"{len(logits)} samples cannot be cut into {splits} splits")
    log_p = torch.log_softmax(logits.detach().double(), dim=1)
    scores = []
    for part in log_p.tensor_split(splits):
        log_marginal = torch.logsumexp(part, dim=0) - math.log(len(part))
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    mean = sum(scores) / splits
    return mean, math.sqrt(sum((s - mean) ** 2 for s in scores) / splits)


def _kth_neighbour_radii(features: Tensor, k: int, chunk: int) -> Tensor:
    """Each row's distance to its k-th nearest other row."""
    radii = []
    for part in features.split(chunk):
        distances = torch.cdist(part, features)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the first is the row itself, at 0
    return torch.cat(radii)


def _covered(queries: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """Whether each query lies within some centre's ball (distance ≤ its radius)."""
    return torch.cat([(torch.cdist(part, centres) <= radii).any(1) for part in queries.split(chunk)])


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, chunk: int = 1024,
                     dtype: torch.dtype = torch.float64) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in the feature space.

    Precision: the share of fakes inside the ball of some real sample, whose radius is the distance
    to its k-th nearest real neighbour; recall: the same with the roles swapped. Distances are
    computed on the features' device in ``dtype`` (float32 makes 50k × 50k sets practical on a GPU).
    """
    x, y = real.detach().to(dtype), fake.detach().to(dtype)
    if min(len(x), len(y)) <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} samples of each set, "
                         f"got {len(x)} and {len(y)}")
    precision = _covered(y, x, _kth_neighbour_radii(x, k, chunk), chunk).double().mean()
    recall = _covered(x, y, _kth_neighbour_radii(y, k, chunk), chunk).double().mean()
    return float(precision), float(recall)
