"""The Loss and Regularizer contracts as executable clauses."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from gancore.conformance.clauses import Checker, expect
from gancore.conformance.networks import labels, seeded
from gancore.conformance.probes import CLASSES, IMAGE, LinearCritic, ProbeDiscriminator, ProbeGenerator
from gancore.interfaces import InputName, Loss, Network, PenaltyContext, Regularizer

LOGIT = st.floats(-1e3, 1e3, allow_nan=False, width=32)
"""Logits a loss must handle: finite, and as large as an unconstrained critic's ever get."""


def _pairs(min_size: int = 1) -> st.SearchStrategy[tuple[list[float], list[float]]]:
    """Real and fake logits of one batch, paired index by index."""
    return st.integers(min_size, 8).flatmap(
        lambda n: st.tuples(st.lists(LOGIT, min_size=n, max_size=n), st.lists(LOGIT, min_size=n, max_size=n)))


def check_loss(ck: Checker, make: Callable[[int], Any]) -> None:
    """Finite scalars and gradients, the sign convention, and the batch mean."""
    loss: Loss = make(0)
    with ck.clause("a Loss"):
        expect(isinstance(loss, Loss), f"built a {type(loss).__name__}")

    def g_loss(fake: Tensor, real: Tensor) -> Tensor:
        return loss.generator_loss(fake, real if loss.relativistic else None)

    def finite(pair: tuple[list[float], list[float]]) -> None:
        real = torch.tensor(pair[0], requires_grad=True)
        fake = torch.tensor(pair[1], requires_grad=True)
        for name, value in (("D", loss.discriminator_loss(real, fake)), ("G", g_loss(fake, real))):
            expect(value.dim() == 0, f"{name}'s loss has shape {tuple(value.shape)}, not a scalar")
            expect(bool(torch.isfinite(value)), f"{name}'s loss is {value.item()}")
            grads = torch.autograd.grad(value, [real, fake], allow_unused=True)
            expect(all(g is None or bool(torch.isfinite(g).all()) for g in grads), f"{name}'s gradients are not finite")
        expect(real.tolist() == pair[0] and fake.tolist() == pair[1], "the loss changed its inputs in place")

    ck.holds("for finite logits both losses are finite scalars with finite gradients, inputs left unchanged",
             finite, max_examples=4 * ck.max_examples, pair=_pairs())

    def sign(n: int, a: float) -> None:
        high, low = torch.full((n,), a), torch.full((n,), -a)
        right, wrong = loss.discriminator_loss(high, low), loss.discriminator_loss(low, high)
        expect(bool(right < wrong), f"D's loss is {float(right):.6g} when reals score +{a} and fakes −{a}, "
                                    f"not below {float(wrong):.6g} for the reverse")
        zero = torch.zeros(n)
        fooled, caught = g_loss(high, zero), g_loss(low, zero)
        expect(bool(fooled < caught), f"G's loss is {float(fooled):.6g} when fakes score +{a}, not below "
                                      f"{float(caught):.6g} when they score −{a} (reals at 0)")

    ck.holds("sign convention: D's loss is lower when reals score above fakes than the reverse, G's lower when "
             "fakes score high", sign, n=st.integers(1, 4), a=st.floats(0.01, 100))
    with ck.clause("at zero logits, raising a real logit does not raise D's loss, raising a fake logit does not "
                   "lower it, and raising a fake logit does not raise G's loss"):
        real = torch.zeros(4, requires_grad=True)
        fake = torch.zeros(4, requires_grad=True)
        d_real, d_fake = torch.autograd.grad(loss.discriminator_loss(real, fake), [real, fake])
        (g_fake,) = torch.autograd.grad(g_loss(fake, real), [fake])
        expect(bool((d_real <= 0).all() and (d_fake >= 0).all()), f"∂L_D/∂real {d_real.tolist()}, "
                                                                   f"∂L_D/∂fake {d_fake.tolist()}")
        expect(bool((g_fake <= 0).all()), f"∂L_G/∂fake {g_fake.tolist()}")

    def mean(pair: tuple[list[float], list[float]], seed: int) -> None:
        real, fake = torch.tensor(pair[0]), torch.tensor(pair[1])
        order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))
        for name, f in (("D", loss.discriminator_loss), ("G", lambda r, x: g_loss(x, r))):
            base = f(real, fake)
            for how, value in (("permuted", f(real[order], fake[order])),
                               ("repeated", f(real.repeat(2), fake.repeat(2)))):
                expect(torch.allclose(value, base, rtol=1e-5, atol=1e-5),
                       f"{name}'s loss is {float(value):.6g} on the {how} batch, {float(base):.6g} on the batch")

    ck.holds("each loss is a batch mean: the same for pairs permuted together and for the batch repeated", mean,
             max_examples=2 * ck.max_examples, pair=_pairs(), seed=st.integers(0, 2**16))


def _probe(network: Network, seed: int) -> nn.Module:
    """A fresh probe network, the same for the same seed."""
    torch.manual_seed(seed)
    return ProbeGenerator() if network == "generator" else ProbeDiscriminator()


def _context(reg: Regularizer, network: Network, module: nn.Module, n: int, seed: int, kimg: float,
             critic: nn.Module | None = None) -> PenaltyContext:
    """The trainer's view of one phase: D's logits on reals and fakes, with the inputs the penalty asked for."""
    D = critic if critic is not None else (module if network == "discriminator" else _probe("discriminator", seed))
    c = labels(CLASSES, n, seed)
    real = seeded(seed, (n, *IMAGE)).clamp(-1, 1)
    if network == "generator":
        fake = module(seeded(seed + 1, (n, module.z_dim)), c)
    else:
        fake = seeded(seed + 1, (n, *IMAGE)).clamp(-1, 1)
    names: tuple[InputName, ...] = reg.input_gradients
    if "real" in names:
        real.requires_grad_(True)
    if "fake" in names:
        fake = fake.detach().requires_grad_(True) if network == "discriminator" else fake
    return PenaltyContext(network=module, critic=D, real=real, fake=fake, labels=c, real_logits=D(real, c),
                          fake_logits=D(fake, c), kimg=kimg, input_gradient_names=names)


def check_regularizer(ck: Checker, make: Callable[[int], Any]) -> None:
    """attach on every kind of layer, attaching twice, and the penalty: finite, non-negative, zero in theory."""
    reg: Regularizer = make(0)
    with ck.clause("a Regularizer with targets among generator and discriminator and every ≥ 1"):
        expect(isinstance(reg, Regularizer), f"built a {type(reg).__name__}")
        expect(bool(reg.targets) and set(reg.targets) <= {"generator", "discriminator"}, f"targets {reg.targets}")
        expect(reg.every >= 1, f"every {reg.every}")
        expect(set(reg.input_gradients) <= {"real", "fake"}, f"input_gradients {reg.input_gradients}")
    has_penalty = type(reg).penalty is not Regularizer.penalty
    for network in reg.targets:
        attached = _probe(network, 0)
        with ck.clause(f"attach leaves a working {network} whose output keeps its shape"):
            torch.manual_seed(0)
            reg.attach(attached)
            _probe_output(attached, network)
        with ck.clause(f"attaching twice to a {network} is refused with an error that says why, or changes nothing "
                       f"(from the same random state)"):
            twice = copy.deepcopy(attached)
            torch.manual_seed(0)
            try:
                make(0).attach(twice)
            except (ValueError, RuntimeError) as exc:
                expect(bool(str(exc)), f"refused with an empty {type(exc).__name__}")
            else:
                before, after = attached.state_dict(), twice.state_dict()
                expect(before.keys() == after.keys(), f"the state dict's keys changed: {sorted(after.keys() - before.keys())[:3]}")
                changed = [k for k in before if not torch.equal(before[k], after[k])]
                expect(not changed, f"attaching again changed {changed[:3]}")
        with ck.clause(f"scalars({network}) returns finite numbers by name"):
            values = reg.scalars(attached)
            expect(all(isinstance(k, str) and isinstance(v, int | float) for k, v in values.items()), f"{values}")
            expect(all(torch.isfinite(torch.tensor(float(v))) for v in values.values()), f"{values}")
        if not has_penalty:
            continue

        def penalty(n: int, seed: int, kimg: float, net: Network = network) -> None:
            module, fresh = _probe(net, seed), make(0)
            torch.manual_seed(seed)
            fresh.attach(module)
            module.train()
            value = fresh.penalty(_context(fresh, net, module, n, seed, kimg))
            if value is None:
                return
            expect(value.dim() == 0 and bool(torch.isfinite(value)), f"penalty {value}")
            number = value.item()
            if reg.nonnegative:
                expect(number >= 0, f"penalty {number:.6g} < 0 (set nonnegative = False if meant)")
            module.zero_grad(set_to_none=True)
            if value.requires_grad:
                value.backward()
            bad = [k for k, p in module.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
            expect(not bad, f"non-finite gradients in {bad[:3]}")

        ck.holds(f"the penalty on a {network} is a finite scalar, ≥ 0 unless declared otherwise, with finite "
                 f"gradients", penalty, n=st.integers(2, 5), seed=st.integers(0, 2**16),
                 kimg=st.floats(0, 1e5))
        with ck.clause(_zero_clause(reg, network)):
            module, fresh = _probe(network, 0), make(0)
            fresh.attach(module)
            critic = None
            if reg.ideal_gradient_norm is not None:
                critic = LinearCritic(IMAGE, reg.ideal_gradient_norm)
                if network == "discriminator":
                    module = critic
            else:
                with torch.no_grad():
                    for p in module.parameters():
                        p.zero_()
            value = fresh.penalty(_context(fresh, network, module, 4, 0, 0.0, critic))
            number = None if value is None else value.item()
            expect(number is None or abs(number) <= 1e-6, f"penalty {number}")


def _zero_clause(reg: Regularizer, network: Network) -> str:
    if reg.ideal_gradient_norm is not None:
        return (f"the penalty vanishes at a critic whose input gradient has the norm it aims at "
                f"(ideal_gradient_norm {reg.ideal_gradient_norm})")
    return f"the weight penalty vanishes on a {network} whose weights are all zero"


def _probe_output(module: nn.Module, network: Network) -> None:
    """Run a probe network on a small batch and check its output's shape."""
    module.eval()
    with torch.no_grad():
        if network == "generator":
            out = module(seeded(0, (2, module.z_dim)), labels(CLASSES, 2, 0))
            expect(tuple(out.shape) == (2, *IMAGE), f"output shape {tuple(out.shape)}")
        else:
            out = module(seeded(0, (2, *IMAGE)), labels(CLASSES, 2, 0))
            expect(tuple(out.shape) == (2,), f"logits shape {tuple(out.shape)}")
        expect(bool(torch.isfinite(out).all()), "non-finite output")
