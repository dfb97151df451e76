"""orthogonal and orthogonal_init: penalties and gradients against closed forms, orthogonal matrices, parameter
names, spectral_norm's raw weights, precision, and initialisation before or after spectral_norm."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from gancore import PenaltyContext
from gancore.testing import make_registry
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import gancore_sn
from gancore_sn import LayerError, Orthogonal, OrthogonalInit, SpectralNorm

REGISTRY = make_registry(gancore_sn)
FEW = settings(max_examples=40, deadline=None, database=None, derandomize=True)
F64 = torch.float64


def orthogonal(**params: Any) -> Orthogonal:
    return REGISTRY.create("regularizer", "orthogonal", params)


def orthogonal_init(**params: Any) -> OrthogonalInit:
    return REGISTRY.create("regularizer", "orthogonal_init", params)


def spectral_norm(**params: Any) -> SpectralNorm:
    return REGISTRY.create("regularizer", "spectral_norm", params)


def context(network: nn.Module) -> PenaltyContext:
    """A G step's context; the penalty reads nothing but ``network``."""
    return PenaltyContext(network, lambda x, c: x.sum(1), None, torch.zeros(1, 2), None, None, None, 0.0)


def value_of(regularizer: Orthogonal, network: nn.Module) -> float:
    """The penalty on ``network`` as a number."""
    return float(regularizer.penalty(context(network)).detach())


def holding(weight: Tensor) -> nn.Module:
    """A module whose one parameter, ``w``, is ``weight``."""
    module = nn.Module()
    module.register_parameter("w", nn.Parameter(weight))
    return module


def residual(matrix: Tensor, mode: str) -> Tensor:
    """WWᵀ ⊙ (1 − I) (relaxed) or WWᵀ − I (full), written out."""
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype)
    gram = matrix @ matrix.T
    return gram * (1 - eye) if mode == "relaxed" else gram - eye


def penalty_of(matrix: Tensor, beta: float, mode: str) -> float:
    return beta / 2 * float(torch.linalg.matrix_norm(residual(matrix, mode)) ** 2)


# -- the penalty ---------------------------------------------------------------------------------------------------


@FEW
@given(rows=st.integers(1, 12), rest=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       mode=st.sampled_from(["relaxed", "full"]), beta=st.floats(1e-5, 10.0), seed=st.integers(0, 2**16))
def test_the_penalty_and_its_gradient_match_the_closed_forms(rows: int, rest: list[int], mode: str, beta: float,
                                                             seed: int) -> None:
    """(β/2)·‖R‖²_F with gradient 2β·R·W, R = WWᵀ ⊙ (1 − I) or WWᵀ − I: the relaxed gradient is the BigGAN
    authors' update β·2·(WWᵀ ⊙ (1 − I))·W. Shapes are wide, square and tall, with 1 to 3 trailing dims."""
    w = torch.randn(rows, *rest, generator=torch.Generator().manual_seed(seed), dtype=F64)
    net = holding(w.clone())
    value = orthogonal(beta=beta, mode=mode).penalty(context(net))
    value.backward()
    m = w.reshape(rows, -1)
    assert float(value.detach()) == pytest.approx(penalty_of(m, beta, mode), rel=1e-8, abs=1e-12)
    scale = beta * (float(torch.linalg.matrix_norm(m)) ** 3 + 1)
    torch.testing.assert_close(net.w.grad, (2 * beta * residual(m, mode) @ m).reshape(w.shape), rtol=1e-8,
                               atol=1e-12 * scale)


@FEW
@given(rows=st.integers(1, 10), extra=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_weights_with_orthonormal_rows_cost_nothing_in_either_mode(rows: int, extra: int, seed: int) -> None:
    """Square and wide weights whose rows are orthonormal (from a QR decomposition)."""
    q, _ = torch.linalg.qr(torch.randn(rows + extra, rows, generator=torch.Generator().manual_seed(seed), dtype=F64))
    net = holding(q.T.contiguous())
    for mode in ("relaxed", "full"):
        assert abs(value_of(orthogonal(beta=1.0, mode=mode), net)) < 1e-12


@FEW
@given(data=st.data(), rows=st.integers(1, 10), extra=st.integers(0, 6), seed=st.integers(0, 2**16))
def test_relaxed_ignores_the_rows_norms_and_full_does_not(data: st.DataObject, rows: int, extra: int,
                                                          seed: int) -> None:
    """Rows orthogonal with any norms d_i: relaxed is 0; full is (β/2)·Σ(d_i² − 1)², positive unless every d_i = 1."""
    norms = data.draw(st.lists(st.floats(0.0, 4.0), min_size=rows, max_size=rows))
    assume(any(abs(d - 1) > 0.1 for d in norms))
    q, _ = torch.linalg.qr(torch.randn(rows + extra, rows, generator=torch.Generator().manual_seed(seed), dtype=F64))
    net = holding(torch.tensor(norms, dtype=F64)[:, None] * q.T)
    relaxed = value_of(orthogonal(beta=2.0, mode="relaxed"), net)
    full = value_of(orthogonal(beta=2.0, mode="full"), net)
    assert abs(relaxed) < 1e-10 * (1 + max(norms) ** 4)
    assert full == pytest.approx(sum((d * d - 1) ** 2 for d in norms), rel=1e-9) and full > 0


@FEW
@given(cols=st.integers(1, 6), extra=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_full_on_a_tall_weight_with_orthonormal_columns_is_the_missing_rank(cols: int, extra: int, seed: int) -> None:
    """WWᵀ is then a projection of rank ``cols`` in ``rows`` dims: ‖WWᵀ − I‖²_F = rows − cols."""
    rows = cols + extra
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=F64))
    assert value_of(orthogonal(beta=2.0, mode="full"), holding(q)) == pytest.approx(rows - cols, rel=1e-9)


class Generator(nn.Module):
    """Named like a BigGAN generator: a shared class embedding, a conv and a linear layer with biases."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(2, 3, 3)
        self.linear = nn.Linear(4, 5)
        self.norm = nn.BatchNorm1d(5)


def off_diagonal_penalty(raw: Tensor, beta: float) -> float:
    return penalty_of(raw.detach().reshape(raw.shape[0], -1), beta, "relaxed")


def test_exclude_names_parameters_and_spectrally_normalised_layers_are_regularised_on_their_raw_weight() -> None:
    torch.manual_seed(0)
    net = Generator().double()
    spectral_norm().attach(net)
    raw = {name: getattr(net, name).parametrizations.weight.original for name in ("shared", "conv", "linear")}
    reg = orthogonal(beta=0.5, exclude=["shared.*"])
    reg.attach(net)
    value = reg.penalty(context(net))
    value.backward()
    expected = off_diagonal_penalty(raw["conv"], 0.5) + off_diagonal_penalty(raw["linear"], 0.5)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-10)
    for name in ("conv", "linear"):
        m = raw[name].detach().reshape(raw[name].shape[0], -1)
        torch.testing.assert_close(raw[name].grad, (2 * 0.5 * residual(m, "relaxed") @ m).reshape(raw[name].shape))
    assert raw["shared"].grad is None and net.conv.bias.grad is None and net.linear.bias.grad is None
    assert net.norm.weight.grad is None
    # the plain names shared.weight and conv.weight reach the stored parametrizations.weight.original
    only_linear = value_of(orthogonal(beta=0.5, exclude=["shared.weight", "conv.weight"]), net)
    assert only_linear == pytest.approx(off_diagonal_penalty(raw["linear"], 0.5), rel=1e-10)


def test_beta_zero_adds_nothing() -> None:
    value = orthogonal(beta=0.0).penalty(context(Generator()))
    assert float(value) == 0.0 and not value.requires_grad


def test_a_network_with_every_weight_excluded_is_refused() -> None:
    with pytest.raises(LayerError, match=r"^orthogonal: Generator has no parameter with at least 2 dims that exclude "
                                         r"\['\*'\] leaves$"):
        orthogonal(exclude=["*"]).attach(Generator())
    with pytest.raises(ValueError, match="BatchNorm1d has no parameter with at least 2 dims"):
        orthogonal().attach(nn.BatchNorm1d(4))


def test_the_penalty_is_computed_in_full_precision_under_autocast() -> None:
    torch.manual_seed(1)
    net = Generator()
    reg = orthogonal(beta=1.0)
    plain = reg.penalty(context(net))
    w = net.linear.weight
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (w @ w.T).dtype == torch.bfloat16  # what an unguarded product would do
        cast = reg.penalty(context(net))
    assert cast.dtype == torch.float32 and torch.equal(cast, plain)


# -- orthogonal initialisation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_init_gives_each_chosen_weight_equal_singular_values_and_keeps_the_rest(gain: float) -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 10), nn.Conv2d(3, 5, 3), nn.ConvTranspose2d(5, 2, 4), nn.Embedding(7, 3),
                        nn.BatchNorm2d(2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    orthogonal_init(gain=gain, exclude=["3"]).attach(net)
    after = net.state_dict()
    for i in (0, 1, 2):
        weight = net[i].weight.detach()
        values = torch.linalg.svdvals(weight.reshape(weight.shape[0], -1))
        torch.testing.assert_close(values, torch.full_like(values, gain), rtol=1e-5, atol=0)
        assert not torch.equal(weight, before[f"{i}.weight"])
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"0.weight", "1.weight", "2.weight"}  # biases, the excluded embedding and BatchNorm kept


@pytest.mark.parametrize("init_first", [True, False], ids=["init_then_sn", "sn_then_init"])
def test_orthogonal_init_and_spectral_norm_work_in_either_order(init_first: bool) -> None:
    """Either way the raw weights are orthogonal (every singular value 2.5) and σ = uᵀWv = 2.5 is estimated on them."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(6, 10), nn.Conv2d(3, 5, 3))
    regs = [orthogonal_init(gain=2.5), spectral_norm()]
    for reg in regs if init_first else regs[::-1]:
        reg.attach(net)
    for layer in net:
        raw = layer.parametrizations.weight.original.detach()
        m = raw.reshape(raw.shape[0], -1)
        values = torch.linalg.svdvals(m)
        torch.testing.assert_close(values, torch.full_like(values, 2.5), rtol=1e-5, atol=0)
        sn = layer.parametrizations.weight[0]
        assert float(sn.sigma) == pytest.approx(2.5, rel=1e-5)
        assert float(sn.sigma) == pytest.approx(float(sn.u @ m @ sn.v), rel=1e-6)
        normalised = torch.linalg.svdvals(layer.weight.detach().reshape(raw.shape[0], -1))
        torch.testing.assert_close(normalised, torch.ones_like(normalised), rtol=1e-5, atol=0)


def test_orthogonal_init_refuses_a_weight_without_a_single_raw_tensor_and_an_empty_choice() -> None:
    normed = nn.Sequential(torch.nn.utils.parametrizations.weight_norm(nn.Linear(3, 4)))
    with pytest.raises(LayerError, match=r"^orthogonal_init: the weight of layer '0' is made of several stored tensors "
                                         r"\(original0, original1\); there is no single raw weight to act on$"):
        orthogonal_init().attach(normed)
    with pytest.raises(LayerError, match=r"^orthogonal_init: no layer of Sequential matches include \['head'\]"):
        orthogonal_init(include=["head"]).attach(nn.Sequential(nn.Linear(2, 2)))

