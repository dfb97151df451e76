"""The built-in regularizers on critics whose gradients are known in closed form, and against finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import gancore
from gancore import ConfigError, PenaltyContext, Regularizer

Critic = Callable[[Tensor, Tensor | None], Tensor]
GRADIENT_PENALTIES = ["r1", "r2", "wgan_gp", "dragan"]
f64 = torch.float64


def make(name: str, **params: object) -> Regularizer:
    return gancore.default_registry().create("regularizer", name, params)


def context(
    regs: Sequence[Regularizer],
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    kimg: float = 0.0,
    labels: Tensor | None = None,
    network: nn.Module | None = None,
) -> PenaltyContext:
    """Prepare one D phase as the trainer does: inputs the penalties differentiate need grad before D's forward."""
    names = tuple(n for n in ("real", "fake") if any(n in r.input_gradients for r in regs))
    inputs = {"real": real, "fake": fake}
    for n in names:
        inputs[n].requires_grad_(True)
    return PenaltyContext(
        network=network if network is not None else nn.Identity(),
        critic=critic,
        real=real,
        fake=fake,
        labels=labels,
        real_logits=critic(real, labels),
        fake_logits=critic(fake, labels),
        kimg=kimg,
        input_gradient_names=names,
    )


def penalty_of(reg: Regularizer, critic: Critic, real: Tensor, fake: Tensor, **kw: object) -> Tensor:
    value = reg.penalty(context([reg], critic, real.clone(), fake.clone(), **kw))  # type: ignore[arg-type]
    assert value is not None and value.shape == ()
    return value


def linear(w: Tensor) -> Critic:
    return lambda x, c: x.flatten(1) @ w


def mlp_critic(seed: int = 0) -> tuple[nn.Module, Critic]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.Softplus(), nn.Linear(4, 1)).to(f64)
    return net, lambda x, c: net(x).squeeze(1)


def randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64)


class Spy:
    """A critic that records what it was called with, for the penalties that pick their own points."""

    def __init__(self, critic: Critic) -> None:
        self.critic = critic
        self.calls: list[tuple[Tensor, Tensor | None]] = []

    def __call__(self, x: Tensor, c: Tensor | None) -> Tensor:
        self.calls.append((x.detach().clone(), c))
        return self.critic(x, c)


# -- parameters and declarations ---------------------------------------------------------------


def test_declared_inputs_targets_and_descriptions() -> None:
    registry = gancore.default_registry()
    expected = {"r1": ("real",), "r2": ("fake",), "wgan_gp": (), "dragan": (), "l2": ()}
    for name, inputs in expected.items():
        reg = make(name)
        assert reg.input_gradients == inputs
        assert reg.targets == ("discriminator",)
        assert reg.every == 1
        assert registry.get("regularizer", name).description


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_gamma_is_bounded_scheduled_and_has_no_every(name: str) -> None:
    assert set(gancore.default_registry().get("regularizer", name).params.model_fields) == {"gamma"}
    assert make(name).gamma(123.0) == 1.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        make(name, gamma=-1)
    with pytest.raises(ConfigError):
        make(name, gamma={"start": -1, "end": 1, "burn_in_kimg": 10})
    with pytest.raises(ConfigError):
        make(name, every=16)


def test_weights_are_bounded() -> None:
    for name in ("wgan_gp", "dragan", "l2"):
        with pytest.raises(ConfigError):
            make(name, weight=-1)
    with pytest.raises(ConfigError):
        make("l2", target="critic")


# -- R1 and R2 -----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    w=st.lists(st.floats(-3, 3), min_size=18, max_size=18),
    gamma=st.floats(0, 100),
    n=st.integers(1, 5),
    name=st.sampled_from(["r1", "r2"]),
)
def test_linear_critic_gives_half_gamma_squared_norm(w: list[float], gamma: float, n: int, name: str) -> None:
    weights = torch.tensor(w, dtype=f64)
    real, fake = randn(n, 2, 3, 3, seed=1), randn(n, 2, 3, 3, seed=2)  # images: the norm spans C, H and W
    value = penalty_of(make(name, gamma=gamma), linear(weights), real, fake)
    assert value.item() == pytest.approx(gamma / 2 * sum(v * v for v in w), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_quadratic_critic_gives_squared_norm_of_ax(name: str) -> None:
    b = randn(4, 4, seed=3)
    a = b + b.T
    critic: Critic = lambda x, c: 0.5 * ((x @ a) * x).sum(1)  # noqa: E731
    real, fake = randn(6, 4, seed=4), randn(6, 4, seed=5)
    x = real if name == "r1" else fake
    expected = 0.3 / 2 * (x @ a).square().sum(1).mean()
    torch.testing.assert_close(penalty_of(make(name, gamma=0.3), critic, real, fake), expected)


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_mlp_input_gradient_matches_jacobian_and_finite_differences(name: str) -> None:
    _, critic = mlp_critic()
    real, fake = randn(5, 3, seed=6), randn(5, 3, seed=7)
    reg = make(name, gamma=2.0)
    which = reg.input_gradients[0]
    ctx = context([reg], critic, real, fake)
    grad = ctx.input_gradient(which)
    x = (real if which == "real" else fake).detach()

    jac = torch.autograd.functional.jacobian(lambda v: critic(v, None), x)  # (N, N, 3)
    per_sample = torch.stack([jac[i, i] for i in range(len(x))])
    torch.testing.assert_close(grad, per_sample)

    h = 1e-6
    fd = torch.zeros_like(x)
    with torch.no_grad():
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                step = torch.zeros_like(x)
                step[i, j] = h
                fd[i, j] = (critic(x + step, None)[i] - critic(x - step, None)[i]) / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)

    torch.testing.assert_close(reg.penalty(ctx), 2.0 / 2 * fd.square().sum(1).mean(), rtol=1e-6, atol=1e-8)


def test_r1_and_r2_together_share_one_backward_and_match_separate_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    _, critic = mlp_critic()
    real, fake = randn(5, 3, seed=8), randn(5, 3, seed=9)
    r1, r2 = make("r1", gamma=0.7), make("r2", gamma=1.3)
    alone = (penalty_of(r1, critic, real, fake), penalty_of(r2, critic, real, fake))

    calls: list[int] = []
    grad = torch.autograd.grad

    def counting_grad(*args: object, **kwargs: object) -> tuple[Tensor, ...]:
        calls.append(1)
        return grad(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    ctx = context([r1, r2], critic, real.clone(), fake.clone())
    together = (r1.penalty(ctx), r2.penalty(ctx))
    assert len(calls) == 1
    torch.testing.assert_close(together, alone)


def test_scheduled_gamma_is_evaluated_at_kimg(monkeypatch: pytest.MonkeyPatch) -> None:
    w = torch.tensor([1.0, 2.0, 2.0], dtype=f64)  # ‖w‖² = 9
    real, fake = randn(4, 3, seed=10), randn(4, 3, seed=11)
    reg = make("r1", gamma={"start": 0, "end": 10, "burn_in_kimg": 100, "shape": "linear"})
    for kimg, gamma in [(25.0, 2.5), (50.0, 5.0), (100.0, 10.0), (400.0, 10.0)]:
        assert penalty_of(reg, linear(w), real, fake, kimg=kimg).item() == pytest.approx(gamma / 2 * 9)
    cosine = make("r1", gamma={"start": 4, "end": 2, "burn_in_kimg": 10})
    assert penalty_of(cosine, linear(w), real, fake, kimg=5.0).item() == pytest.approx(3 / 2 * 9)

    def no_backward(*args: object, **kwargs: object) -> None:
        raise AssertionError("a zero gamma needs no gradient")

    monkeypatch.setattr(torch.autograd, "grad", no_backward)
    assert penalty_of(reg, linear(w), real, fake, kimg=0.0).item() == 0.0


# -- WGAN-GP and DRAGAN ------------------------------------------------------------------------------


unit_vectors = st.lists(st.floats(-1, 1), min_size=12, max_size=12).filter(lambda v: sum(x * x for x in v) > 1e-2)


@settings(max_examples=25, deadline=None)
@given(u=unit_vectors, name=st.sampled_from(["wgan_gp", "dragan"]), n=st.integers(1, 6))
def test_unit_norm_gradient_everywhere_gives_zero(u: list[float], name: str, n: int) -> None:
    w = torch.tensor(u, dtype=f64)
    w = w / w.norm()
    real, fake = randn(n, 3, 2, 2, seed=12), randn(n, 3, 2, 2, seed=13)
    assert penalty_of(make(name), linear(w), real, fake).item() == pytest.approx(0.0, abs=1e-20)


@settings(max_examples=25, deadline=None)
@given(
    w=st.lists(st.floats(-3, 3), min_size=4, max_size=4),
    weight=st.floats(0, 20),
    center=st.floats(0, 2),
)
def test_linear_critic_gives_closed_form(w: list[float], weight: float, center: float) -> None:
    norm = sum(v * v for v in w) ** 0.5
    real, fake = randn(5, 4, seed=14), randn(5, 4, seed=15)
    critic = linear(torch.tensor(w, dtype=f64))
    gp = penalty_of(make("wgan_gp", weight=weight, center=center), critic, real, fake)
    assert gp.item() == pytest.approx(weight * (norm - center) ** 2, rel=1e-9, abs=1e-12)
    dragan = penalty_of(make("dragan", weight=weight), critic, real, fake)
    assert dragan.item() == pytest.approx(weight * (norm - 1) ** 2, rel=1e-9, abs=1e-12)


def test_wgan_gp_expected_value_on_a_quadratic_critic() -> None:
    # D(x) = ½‖x‖² has ∇D(x̂) = x̂; with ε ~ U(0, 1), E‖εr + (1 − ε)f‖² = (‖r‖² + ‖f‖² + r·f) / 3.
    r, f = torch.tensor([1.0, -2.0, 0.5], dtype=f64), torch.tensor([0.5, 1.0, 3.0], dtype=f64)
    n = 20_000
    critic: Critic = lambda x, c: 0.5 * x.square().sum(1)  # noqa: E731
    torch.manual_seed(0)
    value = penalty_of(make("wgan_gp", weight=2.0, center=0.0), critic, r.expand(n, 3), f.expand(n, 3))
    expected = 2.0 * (r @ r + f @ f + r @ f).item() / 3
    assert value.item() == pytest.approx(expected, rel=0.02)


def test_wgan_gp_interpolates_each_sample_between_its_real_and_fake() -> None:
    w = torch.tensor([1.0, 0.5, -1.0, 2.0], dtype=f64)
    spy = Spy(linear(w))
    real, fake = randn(64, 4, seed=16), randn(64, 4, seed=17)
    labels = torch.arange(64)
    make("wgan_gp").penalty(context([make("wgan_gp")], spy, real, fake, labels=labels))
    x_hat, c = spy.calls[-1]
    assert c is labels
    eps = (x_hat - fake) / (real - fake)
    torch.testing.assert_close(eps, eps[:, :1].expand_as(eps))  # one ε per sample
    assert (eps >= 0).all() and (eps <= 1).all()
    assert eps[:, 0].std() > 0.2  # and a different one for each


def test_dragan_perturbs_reals_as_the_reference_code() -> None:
    # x̂ − x = α·k·std(x)·u, std over the whole batch, α per sample and u per element, both U(0, 1).
    spy = Spy(linear(torch.ones(2, dtype=f64)))
    real = 3.0 * randn(20_000, 2, seed=18) + 1.0
    torch.manual_seed(0)
    make("dragan", perturbation=0.5).penalty(context([make("dragan")], spy, real, real.clone()))
    delta = (spy.calls[-1][0] - real) / (0.5 * real.std(correction=0))
    assert (delta >= 0).all() and (delta < 1).all()
    assert delta.mean().item() == pytest.approx(1 / 4, abs=0.01)  # E[α]E[u]
    assert delta.square().mean().item() == pytest.approx(1 / 9, abs=0.01)  # E[α²]E[u²]
    corr = torch.corrcoef(delta.T)[0, 1].item()  # Var(α)E[u]² / Var(αu) = (1/48) / (7/144) = 3/7
    assert corr == pytest.approx(3 / 7, abs=0.03)


def test_dragan_without_perturbation_evaluates_the_reals() -> None:
    spy = Spy(linear(torch.ones(3, dtype=f64)))
    real = randn(4, 3, seed=19)
    make("dragan", perturbation=0.0).penalty(context([make("dragan")], spy, real, randn(4, 3, seed=20)))
    torch.testing.assert_close(spy.calls[-1][0], real)


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_own_points_leave_the_inputs_and_generator_alone(name: str) -> None:
    net, critic = mlp_critic()
    generator = nn.Linear(2, 3).to(f64)
    real = randn(6, 3, seed=21).requires_grad_(True)
    fake = generator(randn(6, 2, seed=22))
    reg = make(name)
    reg.penalty(context([reg], critic, real, fake)).backward()  # type: ignore[union-attr]
    assert real.grad is None
    assert all(p.grad is None for p in generator.parameters())
    assert net[0].weight.grad is not None


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_a_zero_input_gradient_gives_finite_parameter_gradients(name: str) -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).to(f64)
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # every ReLU is off: ∇ₓD = 0, where ‖·‖ is not differentiable
    critic: Critic = lambda x, c: net(x).squeeze(1)  # noqa: E731
    value = penalty_of(make(name, weight=2.0), critic, randn(5, 3, seed=25), randn(5, 3, seed=26))
    assert value.item() == pytest.approx(2.0)
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# -- double backward ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GRADIENT_PENALTIES)
def test_penalty_gradient_wrt_critic_parameters_matches_finite_differences(name: str) -> None:
    net, critic = mlp_critic(seed=1)
    real, fake = randn(4, 3, seed=23), randn(4, 3, seed=24)
    reg = make(name)

    def evaluate() -> Tensor:
        torch.manual_seed(0)  # the same random points on every evaluation
        return penalty_of(reg, critic, real, fake)

    params = list(net.parameters())
    # D's last bias does not reach the input gradient: its derivative is zero
    analytic = torch.autograd.grad(evaluate(), params, allow_unused=True, materialize_grads=True)
    h = 1e-6
    for p, g in zip(params, analytic):
        fd = torch.zeros_like(p)
        flat, fd_flat = p.data.view(-1), fd.view(-1)
        for k in range(flat.numel()):
            original = flat[k].item()
            flat[k] = original + h
            up = evaluate().item()
            flat[k] = original - h
            down = evaluate().item()
            flat[k] = original
            fd_flat[k] = (up - down) / (2 * h)
        torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-7)


# -- L2 ------------------------------------------------------------------------------------------------


def test_l2_is_weighted_sum_of_squares_of_trainable_parameters() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Linear(2, 2))
    net[3].requires_grad_(False)  # frozen parameters are not decayed
    by_hand = sum(v * v for layer in (net[0], net[2]) for p in layer.parameters() for v in p.flatten().tolist())
    reg = make("l2", weight=0.01)
    value = reg.penalty(context([reg], linear(torch.ones(3)), torch.zeros(2, 3), torch.zeros(2, 3), network=net))
    assert value is not None and value.shape == ()
    assert value.item() == pytest.approx(0.01 * by_hand, rel=1e-6)
    value.backward()
    torch.testing.assert_close(net[0].weight.grad, 2 * 0.01 * net[0].weight.detach())


@pytest.mark.parametrize(
    ("target", "targets"),
    [("discriminator", ("discriminator",)), ("generator", ("generator",)), ("both", ("generator", "discriminator"))],
)
def test_l2_targets_what_it_says(target: str, targets: tuple[str, ...]) -> None:
    assert set(make("l2", target=target).targets) == set(targets)
