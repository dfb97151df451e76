"""Each operation's sampled parameter follows its declared distribution, is gated by p × multiplier, is
reproducible from a seed and independent across the images of a batch."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from gancore_ada.pipeline import OPERATIONS, Distributions, apply, sample

N = 20_000
ALPHA = 1e-3  # a right distribution passes at this level; the wrong ones below fall far under 1e-6


def applied_values(op: str, p: float = 1.0, mult: float = 1.0, size: int = 32) -> torch.Tensor:
    draw = sample(N, size, p, {op: mult}, Distributions(), generator=torch.Generator().manual_seed(7))
    values, applied = draw.values[op], draw.applied[op]
    return values[applied] if applied.shape == values.shape else values[applied].reshape(-1)


CONTINUOUS = {  # parameter → standardised sample, and the declared distribution
    "scale": (lambda v: torch.log2(v) / 0.2, stats.norm),
    "aniso": (lambda v: torch.log2(v) / 0.2, stats.norm),
    "xfrac": (lambda v: v / 32 / 0.125, stats.norm),
    "brightness": (lambda v: v / 0.2, stats.norm),
    "contrast": (lambda v: torch.log2(v) / 0.5, stats.norm),
    "saturation": (lambda v: torch.log2(v), stats.norm),
    "imgfilter": (lambda v: torch.log2(v), stats.norm),
    "noise": (lambda v: v / 0.1, stats.halfnorm),
    "rotate": (lambda v: v, stats.uniform(-math.pi, 2 * math.pi)),
    "hue": (lambda v: v, stats.uniform(-math.pi, 2 * math.pi)),
    "cutout": (lambda v: v, stats.uniform(0, 1)),
}


@pytest.mark.parametrize("op", sorted(CONTINUOUS))
def test_continuous_parameters_follow_their_distribution(op: str) -> None:
    standardise, dist = CONTINUOUS[op]
    values = standardise(applied_values(op)).numpy()
    assert len(values) >= N // 2
    assert stats.kstest(values, dist.cdf).pvalue > ALPHA
    # the test has power: the same samples against a 20% wider (or half as wide uniform) law are rejected
    wrong = (stats.norm(scale=1.2) if dist is stats.norm else stats.halfnorm(scale=1.2) if dist is stats.halfnorm
             else stats.uniform(dist.mean() - dist.std() * math.sqrt(3) / 2, dist.std() * math.sqrt(3)))
    assert stats.kstest(values, wrong.cdf).pvalue < 1e-6


DISCRETE = {  # op → the declared probabilities of its values
    "xflip": {0: 0.5, 1: 0.5},
    "lumaflip": {0: 0.5, 1: 0.5},
    "rotate90": {k: 0.25 for k in range(4)},
    # round(U(−4, 4)) at size 32: ±4 come from half-width intervals
    "xint": {k: (1 / 16 if abs(k) == 4 else 1 / 8) for k in range(-4, 5)},
}


@pytest.mark.parametrize("op", sorted(DISCRETE))
def test_discrete_parameters_follow_their_distribution(op: str) -> None:
    declared = DISCRETE[op]
    draw = sample(N, 32, 1.0, {op: 1.0}, Distributions(), generator=torch.Generator().manual_seed(3))
    values = draw.values[op].reshape(-1).long().tolist()  # p = 1: every image (both axes for xint)
    counts = [values.count(k) for k in declared]
    assert sum(counts) == len(values)
    expected = [len(values) * q for q in declared.values()]
    assert stats.chisquare(counts, expected).pvalue > ALPHA
    uniform = [len(values) / len(declared)] * len(declared)
    if expected != uniform:
        assert stats.chisquare(counts, uniform).pvalue < 1e-6


@pytest.mark.parametrize("op", [op.name for op in OPERATIONS])
def test_each_operation_is_applied_with_probability_p_times_its_multiplier(op: str) -> None:
    draw = sample(N, 32, 0.3, {op: 0.5}, Distributions(), generator=torch.Generator().manual_seed(11))
    applied = draw.applied[op]
    # one decision per image; rotate decides twice (before and after aniso) and imgfilter once per band
    per_image = applied.reshape(N, -1)
    hits = per_image.any(1) if op == "rotate" else per_image[:, 0]
    assert stats.binomtest(int(hits.sum()), N, 0.15).pvalue > ALPHA
    assert stats.binomtest(int(hits.sum()), N, 0.18).pvalue < 1e-6


def test_identity_values_where_not_applied() -> None:
    draw = sample(1000, 32, 0.4, {op.name: 1.0 for op in OPERATIONS}, Distributions(),
                  generator=torch.Generator().manual_seed(5))
    from gancore_ada.pipeline import IDENTITY
    for op in OPERATIONS:
        if op.name in ("cutout",):  # a centre, meaningless unless applied
            continue
        values, applied = draw.values[op.name], draw.applied[op.name]
        mask = applied if applied.shape == values.shape else applied.view(len(applied), *([1] * (values.dim() - 1)))
        assert torch.all(torch.where(mask, torch.full_like(values, IDENTITY[op.name]), values)
                         == IDENTITY[op.name]), op.name


def test_the_same_seed_gives_the_same_draw_and_images_are_independent() -> None:
    mults = {op.name: 1.0 for op in OPERATIONS}

    def draw(seed: int):  # noqa: ANN202
        return sample(N, 32, 0.5, mults, Distributions(), generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(1), draw(1), draw(2)
    assert all(torch.equal(a.values[k], b.values[k]) and torch.equal(a.applied[k], b.applied[k]) for k in a.values)
    assert not torch.equal(a.values["scale"], c.values["scale"])
    for name in ("scale", "brightness", "hue"):
        v = a.values[name].numpy()
        assert abs(stats.pearsonr(v[:-1], v[1:]).statistic) < 5 / math.sqrt(N), name
    first = a.applied["xflip"].numpy().astype(float)
    assert abs(stats.pearsonr(first[:-1], first[1:]).statistic) < 5 / math.sqrt(N)


def test_operations_are_gated_independently_of_each_other() -> None:
    mults = {op.name: 1.0 for op in OPERATIONS}
    draw = sample(N, 32, 0.5, mults, Distributions(), generator=torch.Generator().manual_seed(21))
    gates = {k: v.reshape(N, -1)[:, 0].double().numpy() for k, v in draw.applied.items()}
    gates["rotate (after aniso)"] = draw.applied["rotate"][:, 1].double().numpy()
    names = sorted(gates)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert abs(stats.pearsonr(gates[a], gates[b]).statistic) < 5 / math.sqrt(N), (a, b)
    # and the values of different operations in one image are uncorrelated too
    for a, b in (("scale", "aniso"), ("brightness", "contrast"), ("hue", "saturation")):
        assert abs(stats.pearsonr(draw.values[a].numpy(), draw.values[b].numpy()).statistic) < 5 / math.sqrt(N)


def test_apply_with_a_seeded_generator_is_reproducible_and_only_the_noise_depends_on_it() -> None:
    mults = {op.name: 1.0 for op in OPERATIONS}
    draw = sample(16, 16, 0.6, mults, Distributions(), generator=torch.Generator().manual_seed(8))
    again = sample(16, 16, 0.6, mults, Distributions(), generator=torch.Generator().manual_seed(8))
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a = apply(x, draw, torch.Generator().manual_seed(1))
    assert torch.equal(a, apply(x, again, torch.Generator().manual_seed(1)))
    b = apply(x, draw, torch.Generator().manual_seed(2))
    noisy = draw.applied["noise"]
    assert bool(noisy.any()) and bool((~noisy).any())
    for i in range(16):
        assert torch.equal(a[i], b[i]) != bool(noisy[i]), i  # a different generator changes the noisy ones only


def test_noise_has_the_drawn_standard_deviation_per_image() -> None:
    draw = sample(32, 64, 0.8, {"noise": 1.0}, Distributions(), generator=torch.Generator().manual_seed(4))
    x = torch.rand(32, 3, 64, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    noise = apply(x, draw, torch.Generator().manual_seed(6)) - x
    sigma = draw.values["noise"]
    for i in range(32):
        if sigma[i] == 0:
            assert torch.equal(noise[i], torch.zeros_like(noise[i]))
            continue
        # 12288 independent N(0, σ²) pixels: the sample std is within 5·σ/√(2·12288) ≈ 3% of σ
        assert abs(float(noise[i].std()) / float(sigma[i]) - 1) < 0.032
        assert abs(float(noise[i].mean())) < 5 * float(sigma[i]) / math.sqrt(noise[i].numel())
