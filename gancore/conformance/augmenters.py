"""The Augmenter contract as executable clauses: those of ADA's non-leaking conditions that hold for any augmenter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from gancore.conformance.clauses import Checker, expect
from gancore.conformance.networks import MAX_BATCH, devices, round_trip, seeded
from gancore.interfaces import Augmenter

P = st.floats(0, 1)


def check_augmenter(ck: Checker, make: Callable[[int], Any], shape: tuple[int, ...]) -> None:
    """p = 0 identity, shape/dtype/finiteness, differentiability, seed determinism, p's bounds and state."""
    aug: Augmenter = make(0)
    with ck.clause("an Augmenter whose p is a scalar buffer in [0, 1]"):
        expect(isinstance(aug, Augmenter), f"built a {type(aug).__name__}")
        expect(aug.p.dim() == 0 and 0 <= float(aug.p) <= 1, f"p = {aug.p}")
        expect(any(name == "p" for name, _ in aug.named_buffers()), "p is not a buffer")

    def images(n: int, seed: int, device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return seeded(seed, (n, *shape), device).clamp(-1, 1).to(dtype)

    def identity(n: int, seed: int, device: str) -> None:
        aug.to(device).p.fill_(0.0)
        x = images(n, seed, device)
        y = aug(x)
        expect(torch.equal(y, x), f"at p = 0 the output differs from the input by {float((y - x).abs().max()):.3g}")

    ck.holds("at p = 0 the augmenter is the identity, exactly", identity, n=st.integers(1, MAX_BATCH),
             seed=st.integers(0, 2**16), device=st.sampled_from(devices()))
    aug.cpu()

    def kept(n: int, seed: int, p: float, device: str, dtype: torch.dtype) -> None:
        aug.to(device).p.fill_(p)
        torch.manual_seed(seed)
        x = images(n, seed, device, dtype)
        y = aug(x)
        expect(tuple(y.shape) == tuple(x.shape), f"output shape {tuple(y.shape)} for input {tuple(x.shape)}")
        expect(y.dtype == x.dtype and y.device == x.device, f"output {y.dtype} on {y.device}")
        expect(bool(torch.isfinite(y).all()), "non-finite output")

    ck.holds("the output has the input's shape, dtype (float32, float64, bfloat16) and device, and is finite, "
             "for any p", kept, n=st.integers(1, MAX_BATCH), seed=st.integers(0, 2**16), p=P,
             device=st.sampled_from(devices()), dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]))
    aug.cpu()

    def differentiable(n: int, seed: int, p: float) -> None:
        aug.p.fill_(p)
        torch.manual_seed(seed)
        x = images(n, seed).requires_grad_(True)
        (aug(x) * seeded(seed + 1, (n, *shape))).sum().backward()
        expect(x.grad is not None, "no gradient reaches the input (G learns through the augmentation)")
        expect(bool(torch.isfinite(x.grad).all()), "non-finite input gradient")

    ck.holds("gradients flow back to the input and are finite (G is trained through the augmentation)",
             differentiable, n=st.integers(1, MAX_BATCH), seed=st.integers(0, 2**16), p=P)

    def determined(n: int, seed: int, p: float) -> None:
        aug.p.fill_(p)
        x = images(n, seed)
        torch.manual_seed(seed)
        first = aug(x)
        torch.manual_seed(seed)
        expect(torch.equal(aug(x), first), "the same seed gave two different outputs")

    ck.holds("the same torch seed gives the same output", determined, n=st.integers(1, MAX_BATCH),
             seed=st.integers(0, 2**16), p=P)

    def updated(steps: list[tuple[float, list[float]]]) -> None:
        fresh, kimg = make(0), 0.0
        for advance, logits in steps:
            kimg += advance
            fresh.update(kimg, torch.tensor(logits))
            expect(0 <= float(fresh.p) <= 1, f"p = {float(fresh.p)} after update({kimg}, ...)")
        values = fresh.scalars()
        expect("p" in values and all(isinstance(v, int | float) for v in values.values()), f"scalars {values}")

    step = st.tuples(st.floats(0, 10), st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=8))
    ck.holds("update(kimg, logits) keeps p in [0, 1], and scalars() reports p among numbers", updated,
             steps=st.lists(step, min_size=1, max_size=20))
    with ck.clause("a state dict saved and loaded (weights_only) into a new instance restores p"):
        aug.p.fill_(0.375)
        expect(float(round_trip(make, aug).p) == 0.375, "p was not restored")
