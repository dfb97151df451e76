"""spectral_norm: σ and the normalised weight against torch.linalg and torch's own spectral_norm, the gradient,
eval mode, layer selection, refusals, state dicts, copies and identical replicas."""

from __future__ import annotations

import copy
import importlib.metadata
import io
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gancore import GancoreError
from gancore.testing import make_registry
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn.utils import parametrize

import gancore_sn
from gancore_sn import LayerError, SpectralNorm, SpectralNormWeight, sigmas

REGISTRY = make_registry(gancore_sn)
FEW = settings(max_examples=25, deadline=None, database=None, derandomize=True)

LAYERS: dict[str, Callable[[int, int], nn.Module]] = {
    "linear": lambda a, b: nn.Linear(a, b),
    "embedding": lambda a, b: nn.Embedding(a, b),
    "conv1d": lambda a, b: nn.Conv1d(a, b, 2),
    "conv2d": lambda a, b: nn.Conv2d(a, b, 3),
    "conv3d": lambda a, b: nn.Conv3d(a, b, 2),
    "conv_transpose1d": lambda a, b: nn.ConvTranspose1d(a, b, 2),
    "conv_transpose2d": lambda a, b: nn.ConvTranspose2d(a, b, 3),
    "conv_transpose3d": lambda a, b: nn.ConvTranspose3d(a, b, 2),
}


def spectral_norm(**params: Any) -> SpectralNorm:
    return REGISTRY.create("regularizer", "spectral_norm", params)


def normalised(layer: nn.Module, **params: Any) -> nn.Sequential:
    """A network whose one layer, named ``layer``, is spectrally normalised."""
    net = nn.Sequential(OrderedDict(layer=layer))
    spectral_norm(**params).attach(net)
    return net


def sn_of(layer: nn.Module) -> SpectralNormWeight:
    return layer.parametrizations.weight[0]


def matrix_of(layer: nn.Module, weight: Tensor) -> Tensor:
    """The weight as (outputs, rest), written independently of the plugin: a transposed conv stores (in, out, ...)."""
    if isinstance(layer, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        weight = weight.transpose(0, 1)
    return weight.reshape(weight.shape[0], -1)


def weight_from_matrix(layer: nn.Module, matrix: Tensor) -> Tensor:
    """The inverse of ``matrix_of`` for ``layer``'s weight shape."""
    shape = list(layer.weight.shape)
    if isinstance(layer, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        shape[0], shape[1] = shape[1], shape[0]
        return matrix.reshape(shape).transpose(0, 1).contiguous()
    return matrix.reshape(shape)


# -- σ against the exact top singular value -------------------------------------------------------------------


@FEW
@given(kind=st.sampled_from(sorted(LAYERS)), a=st.integers(1, 8), b=st.integers(1, 8),
       top=st.floats(0.1, 10.0), gap=st.floats(0.05, 0.8), seed=st.integers(0, 2**16))
def test_sigma_rises_to_the_top_singular_value_and_the_normalised_weight_to_norm_one(
        kind: str, a: int, b: int, top: float, gap: float, seed: int) -> None:
    """On a weight of known spectrum (σ₂/σ₁ = gap ≤ 0.8): σ is within 1e-3 of σ₁ once attached (settled), never
    exceeds σ₁, never falls, and after 20 training-mode evaluations is σ₁ to 1e-6; the normalised weight's top
    singular value is then 1 to 1e-6."""
    g = torch.Generator().manual_seed(seed)
    layer = LAYERS[kind](a, b).double()
    rows, cols = matrix_of(layer, layer.weight).shape
    k = min(rows, cols)
    left, _ = torch.linalg.qr(torch.randn(rows, k, generator=g, dtype=torch.float64))
    right, _ = torch.linalg.qr(torch.randn(cols, k, generator=g, dtype=torch.float64))
    rest = gap * torch.rand(k - 1, generator=g, dtype=torch.float64).sort(descending=True).values
    spectrum = top * torch.cat([torch.ones(1, dtype=torch.float64), rest])
    with torch.no_grad():
        layer.weight.copy_(weight_from_matrix(layer, left @ torch.diag(spectrum) @ right.T))
    torch.manual_seed(seed)
    net = normalised(layer)
    W = matrix_of(layer, layer.parametrizations.weight.original.detach())
    exact = float(torch.linalg.svdvals(W)[0])
    assert exact == pytest.approx(top, rel=1e-9)
    assert float(sn_of(net.layer).sigma) == pytest.approx(exact, rel=1e-3)  # settled at attach, before any step
    estimates = []
    for _ in range(20):
        normalised_weight = net.layer.weight  # one power iteration per evaluation in training mode
        estimates.append(float(sn_of(net.layer).sigma))
    assert all(e <= exact * (1 + 1e-9) for e in estimates)
    assert all(later >= earlier * (1 - 1e-9) for earlier, later in zip(estimates, estimates[1:]))
    assert estimates[-1] == pytest.approx(exact, rel=1e-6)
    top_after = float(torch.linalg.svdvals(matrix_of(layer, normalised_weight.detach()))[0])
    assert top_after == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize(("kind", "a", "b"), [("linear", 128, 64), ("conv2d", 16, 32), ("conv_transpose2d", 32, 16),
                                              ("embedding", 10, 32)])
def test_sigma_of_default_initialised_layers_matches_svdvals_after_enough_power_iterations(
        kind: str, a: int, b: int) -> None:
    """Random weights (σ₂/σ₁ from 0.95 to 0.98): 15 settling + 10 × 20 iterations bring σ within 1e-5 of σ₁
    (relative; about 2e-7 in float32), and the normalised weight's top singular value to 1."""
    torch.manual_seed(0)
    net = normalised(LAYERS[kind](a, b), n_power_iterations=20)
    for _ in range(10):
        net.layer.weight  # each evaluation in training mode runs 20 iterations
    exact = torch.linalg.svdvals(matrix_of(net.layer, net.layer.parametrizations.weight.original.detach()))[0]
    assert float(sn_of(net.layer).sigma) == pytest.approx(float(exact), rel=1e-5)
    assert float(torch.linalg.svdvals(matrix_of(net.layer, net.layer.weight.detach()))[0]) == pytest.approx(1, rel=1e-5)


# -- the same as torch's spectral_norm ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_power_iterations", [1, 3])
@pytest.mark.parametrize(("make", "input_shape"), [
    (lambda: nn.Linear(7, 5), (4, 7)),
    (lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 6)),
    (lambda: nn.ConvTranspose2d(4, 3, 3, stride=2), (2, 4, 5, 5)),
], ids=["linear", "conv2d", "conv_transpose2d"])
def test_training_matches_torch_spectral_norm_from_the_same_weight_and_vectors(
        make: Callable[[], nn.Module], input_shape: tuple[int, ...], n_power_iterations: int) -> None:
    """Outputs, u, v, the normalised weight and the raw weight's gradient agree with torch's over 5 SGD steps."""
    torch.manual_seed(1)
    ours = make()
    theirs = torch.nn.utils.parametrizations.spectral_norm(copy.deepcopy(ours), n_power_iterations=n_power_iterations)
    net = normalised(ours, n_power_iterations=n_power_iterations)
    sn, torch_sn = sn_of(ours), theirs.parametrizations.weight[0]
    with torch.no_grad():
        torch_sn._u.copy_(sn.u)
        torch_sn._v.copy_(sn.v)
    ours_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    theirs_opt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    x = torch.randn(input_shape)
    start = ours.parametrizations.weight.original.detach().clone()
    for _ in range(5):
        out, expected = net(x), theirs(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sn.u, torch_sn._u, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(sn.v, torch_sn._v, rtol=1e-5, atol=1e-7)
        net.eval()
        theirs.eval()
        torch.testing.assert_close(ours.weight, theirs.weight, rtol=1e-5, atol=1e-7)
        net.train()
        theirs.train()
        for opt, y in ((ours_opt, out), (theirs_opt, expected)):
            opt.zero_grad()
            y.square().mean().backward()
        ours_grad = ours.parametrizations.weight.original.grad
        theirs_grad = theirs.parametrizations.weight.original.grad
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-4, atol=1e-6)
        ours_opt.step()
        theirs_opt.step()
    assert not torch.allclose(ours.parametrizations.weight.original, start, atol=1e-3)  # the weights did move


def test_a_gradient_penalty_s_double_backward_matches_torch_after_two_forwards() -> None:
    """R1-like use in D: forwards on reals and fakes (the second updates u and v in place), then the gradient of
    ‖∇ₓD(real)‖² + D(fake) with respect to the raw weights, equal to torch's spectral_norm from the same vectors."""
    torch.manual_seed(6)
    ours = nn.Sequential(nn.Linear(4, 8), nn.Softplus(), nn.Linear(8, 1))
    theirs = copy.deepcopy(ours)
    spectral_norm().attach(ours)
    for i in (0, 2):
        torch.nn.utils.parametrizations.spectral_norm(theirs[i])
        with torch.no_grad():
            theirs[i].parametrizations.weight[0]._u.copy_(sn_of(ours[i]).u)
            theirs[i].parametrizations.weight[0]._v.copy_(sn_of(ours[i]).v)
    real, fake = torch.randn(5, 4), torch.randn(5, 4)
    grads = []
    for net in (ours, theirs):
        x = real.clone().requires_grad_(True)
        real_logits, fake_logits = net(x), net(fake)
        (input_grad,) = torch.autograd.grad(real_logits.sum(), x, create_graph=True)
        (input_grad.square().sum() + fake_logits.sum()).backward()
        grads.append([net[i].parametrizations.weight.original.grad for i in (0, 2)])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_attaching_on_the_meta_device_builds_without_data() -> None:
    """Networks are built on the meta device to count their parameters: attach must not need values there."""
    with torch.device("meta"):
        net = normalised(nn.Conv2d(3, 8, 3))
        out = net(torch.empty(2, 3, 5, 5))
    assert out.shape == (2, 8, 3, 3) and sn_of(net.layer).u.is_meta
    assert sum(p.numel() for p in net.parameters()) == 8 * 3 * 9 + 8


def test_the_gradient_reaches_the_weight_through_sigma_with_u_and_v_held_constant() -> None:
    """∂⟨G, W/σ⟩/∂W = G/σ − ⟨G, W⟩/σ² · u vᵀ with σ = uᵀWv: neither G/σ (σ detached) nor a gradient through u, v."""
    torch.manual_seed(4)
    net = normalised(nn.Linear(5, 7).double())
    raw = net.layer.parametrizations.weight.original
    G = torch.randn(7, 5, dtype=torch.float64)
    (net.layer.weight * G).sum().backward()
    sn = sn_of(net.layer)
    W = raw.detach()
    sigma = sn.u @ W @ sn.v
    assert float(sn.sigma) == pytest.approx(float(sigma), rel=1e-12)
    expected = G / sigma - (G * W).sum() / sigma**2 * torch.outer(sn.u, sn.v)
    torch.testing.assert_close(raw.grad, expected, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(raw.grad, G / sigma, rtol=1e-3)


# -- eval mode -------------------------------------------------------------------------------------------------------


def test_eval_mode_runs_no_power_iteration_and_divides_by_the_stored_vectors_sigma() -> None:
    torch.manual_seed(3)
    net = normalised(nn.Linear(6, 9))
    sn = sn_of(net.layer)
    with torch.no_grad():  # away from the settled vector, so that any iteration would visibly move it
        sn.u.copy_(F.normalize(torch.randn(9), dim=0))
    u, v = sn.u.clone(), sn.v.clone()
    W = net.layer.parametrizations.weight.original.detach()
    x = torch.randn(2, 6)
    net.eval()
    for _ in range(3):
        net(x)
    assert torch.equal(sn.u, u) and torch.equal(sn.v, v)
    sigma = u @ W @ v
    assert float(sn.sigma) == pytest.approx(float(sigma), rel=1e-6)
    torch.testing.assert_close(net.layer.weight, W / sigma, rtol=1e-6, atol=0)
    net.train()
    net(x)
    assert not torch.allclose(sn.u, u, atol=1e-3)


def test_an_eval_forward_and_a_training_forward_can_share_one_backward_pass() -> None:
    """The training forward updates u and v in place; the eval forward's graph must not hold those buffers."""
    torch.manual_seed(8)
    net = normalised(nn.Linear(3, 4))
    x = torch.randn(2, 3)
    net.eval()
    first = net(x)
    net.train()
    second = net(x)
    (first.sum() + second.sum()).backward()
    assert net.layer.parametrizations.weight.original.grad.abs().sum() > 0


# -- which layers ----------------------------------------------------------------------------------------------------


class Zoo(nn.Module):
    """Every kind of layer, named like a BigGAN generator's, and a BatchNorm (never normalised)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Embedding(10, 8)
        self.blocks = nn.ModuleList([nn.ModuleDict({"conv": nn.Conv2d(3, 4, 3), "skip": nn.Conv2d(3, 4, 1)})
                                     for _ in range(2)])
        self.up = nn.ConvTranspose2d(4, 4, 2)
        self.extras = nn.Sequential(nn.Conv1d(2, 2, 1), nn.Conv3d(2, 2, 1), nn.ConvTranspose1d(2, 2, 1),
                                    nn.ConvTranspose3d(2, 2, 1))
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(8, 1)


ALL = {"shared", "blocks.0.conv", "blocks.0.skip", "blocks.1.conv", "blocks.1.skip", "up", "extras.0", "extras.1",
       "extras.2", "extras.3", "head"}


@pytest.mark.parametrize(("include", "exclude", "expected"), [
    (["*"], [], ALL),
    (["*"], ["shared"], ALL - {"shared"}),
    (["blocks.*"], ["*.skip"], {"blocks.0.conv", "blocks.1.conv"}),
    (["blocks.0.*", "head"], [], {"blocks.0.conv", "blocks.0.skip", "head"}),
    (["*conv"], ["blocks.1.*"], {"blocks.0.conv"}),
    (["extras.?"], ["extras.[02]"], {"extras.1", "extras.3"}),
    (["*"], ["*.*"], {"shared", "up", "head"}),
])
def test_include_and_exclude_choose_the_layers(include: list[str], exclude: list[str], expected: set[str]) -> None:
    net = Zoo()
    spectral_norm(include=include, exclude=exclude).attach(net)
    assert {name for name, m in net.named_modules() if parametrize.is_parametrized(m, "weight")} == expected
    found = sigmas(net)
    assert set(found) == expected
    for name, sigma in found.items():
        assert torch.equal(sigma, sn_of(net.get_submodule(name)).sigma)
        assert sigma.data_ptr() != sn_of(net.get_submodule(name)).sigma.data_ptr()  # a copy, safe to keep


def test_a_selection_of_no_layer_is_refused_naming_the_patterns_and_the_candidates() -> None:
    with pytest.raises(ValueError) as caught:
        spectral_norm(include=["trunk.*"], exclude=["head"]).attach(Zoo())
    assert isinstance(caught.value, GancoreError)
    assert str(caught.value) == (
        "spectral_norm: no layer of Zoo matches include ['trunk.*'] and not exclude ['head']; its conv, linear and "
        "embedding layers are: shared, blocks.0.conv, blocks.0.skip, blocks.1.conv, blocks.1.skip, up, extras.0, "
        "extras.1, extras.2, extras.3, head")
    with pytest.raises(LayerError, match=r"of Sequential matches include \['\*'\] .* are: \(none\)$"):
        spectral_norm().attach(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


def test_attaching_twice_is_refused_before_any_layer_changes() -> None:
    net = Zoo()
    spectral_norm(include=["head"]).attach(net)
    u = sn_of(net.head).u.clone()
    with pytest.raises(LayerError, match="spectral_norm: layer 'head' of Zoo is already spectrally normalised; list "
                                         "spectral_norm once per network"):
        spectral_norm().attach(net)
    assert set(sigmas(net)) == {"head"} and len(net.head.parametrizations.weight) == 1
    assert torch.equal(sn_of(net.head).u, u)


def test_weights_parametrized_otherwise_are_refused() -> None:
    torch_sn = nn.Sequential(torch.nn.utils.parametrizations.spectral_norm(nn.Linear(3, 3)))
    with pytest.raises(LayerError, match=r"the weight of layer '0' of Sequential is already parametrized "
                                         r"\(_SpectralNorm\); spectral_norm must be its only parametrization"):
        spectral_norm().attach(torch_sn)
    hooked = nn.Sequential(nn.Linear(3, 3), torch.nn.utils.spectral_norm(nn.Linear(3, 3)))
    with pytest.raises(LayerError, match="the weight of layer '1' is not a parameter of the layer"):
        spectral_norm().attach(hooked)
    assert not parametrize.is_parametrized(hooked[0])  # refused before the first layer was changed


def test_the_parametrization_itself_refuses_fewer_than_one_power_iteration() -> None:
    with pytest.raises(ValueError, match="n_power_iterations must be at least 1, got 0"):
        SpectralNormWeight(torch.randn(3, 4), dim=0, n_power_iterations=0, eps=1e-12)


# -- state, copies, replicas, precision ------------------------------------------------------------------------------


def small_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    spectral_norm(n_power_iterations=2).attach(net)
    return net


def sgd_step(net: nn.Module, opt: torch.optim.Optimizer, x: Tensor) -> None:
    opt.zero_grad()
    net(x).square().mean().backward()
    opt.step()


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_a_state_dict_restores_u_v_and_sigma_exactly_and_training_goes_on_bit_for_bit() -> None:
    x = torch.randn(5, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    a = small_net(0)
    a_opt = torch.optim.SGD(a.parameters(), lr=0.05)
    for _ in range(3):
        sgd_step(a, a_opt, x)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert sorted(k for k in saved if k.endswith(("original", ".u", ".v", ".sigma"))) == [
        f"{i}.parametrizations.weight.{leaf}" for i in (0, 3) for leaf in ("0.sigma", "0.u", "0.v", "original")]
    b = small_net(1)
    assert not torch.equal(b[3].parametrizations.weight[0].u, a[3].parametrizations.weight[0].u)
    b.load_state_dict(saved)
    assert_same_state(a, b)
    b_opt = torch.optim.SGD(b.parameters(), lr=0.05)  # plain SGD keeps no state of its own
    for _ in range(3):
        sgd_step(a, a_opt, x)
        sgd_step(b, b_opt, x)
    assert_same_state(a, b)


def test_a_deep_copy_is_independent_and_follows_when_given_the_buffers_as_the_trainer_does() -> None:
    G = small_net(5)
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    assert set(sigmas(ema)) == {"0", "3"}
    x = torch.randn(3, 2, 6, 6)
    u = sn_of(ema[3]).u.clone()
    sgd_step(G, torch.optim.SGD(G.parameters(), lr=0.1), x)
    assert torch.equal(sn_of(ema[3]).u, u) and not torch.equal(sn_of(G[3]).u, u)
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), G.parameters()):
            p_ema.copy_(p)
        for b_ema, b in zip(ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    assert torch.equal(ema(x), G.eval()(x))


def test_replicas_with_identical_weights_stay_identical_whatever_their_batches() -> None:
    """Data parallelism: each replica sees its own batch, gradients are averaged; u, v, σ never diverge."""
    replicas = [small_net(7), small_net(7)]
    opts = [torch.optim.SGD(r.parameters(), lr=0.1) for r in replicas]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for replica, opt in zip(replicas, opts):
            opt.zero_grad()
            replica(torch.randn(8, 2, 6, 6, generator=g)).mean().backward()
        for pa, pb in zip(replicas[0].parameters(), replicas[1].parameters()):
            mean = (pa.grad + pb.grad) / 2
            pa.grad.copy_(mean)
            pb.grad.copy_(mean)
        for opt in opts:
            opt.step()
    assert_same_state(replicas[0], replicas[1])


def test_sigma_is_estimated_in_full_precision_under_autocast() -> None:
    net = normalised(nn.Linear(16, 8))
    net.eval()
    plain = net.layer.weight
    raw = net.layer.parametrizations.weight.original
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (raw @ sn_of(net.layer).v).dtype == torch.bfloat16  # what an unguarded product would do
        cast = net.layer.weight
        out = net(torch.randn(2, 16))
    assert cast.dtype == torch.float32 and out.dtype == torch.bfloat16
    assert torch.equal(cast, plain)


# -- the plugin ------------------------------------------------------------------------------------------------------


def test_the_plugin_registers_its_three_regularizers_and_its_entry_point() -> None:
    assert REGISTRY.plugins["gancore_sn"].status == "ok"
    names = {s.name for s in REGISTRY.list() if s.kind == "regularizer" and s.plugin == "gancore_sn"}
    assert names == {"spectral_norm", "orthogonal", "orthogonal_init"}
    (entry,) = [e for e in importlib.metadata.entry_points(group="gancore") if e.name == "sn"]
    assert entry.value == "gancore_sn" and entry.dist is not None and entry.dist.name == "gancore-sn"
