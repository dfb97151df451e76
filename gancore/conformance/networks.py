"""The Generator and Discriminator contracts as executable clauses."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from gancore.conformance.clauses import Checker, expect
from gancore.interfaces import Discriminator, Generator

MAX_BATCH = 4
CLOSE = dict(rtol=1e-4, atol=1e-5)
"""How near a sample computed alone must be to the same sample computed in a batch (kernels differ by batch)."""


def devices() -> list[str]:
    """The devices present here: the CPU, and the GPU when there is one."""
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def labels(num_classes: int, n: int, seed: int, device: str = "cpu") -> Tensor | None:
    """n labels drawn uniformly from the classes, or None for an unconditional network."""
    if not num_classes:
        return None
    return torch.randint(num_classes, (n,), generator=torch.Generator().manual_seed(seed)).to(device)


def seeded(seed: int, shape: tuple[int, ...], device: str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """A standard normal tensor from its own generator, so a clause's inputs depend on its example only."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def check_trainable(network: nn.Module, output: Tensor, what: str) -> None:
    """Backpropagate a random projection of ``output``: every trainable parameter must get a finite gradient."""
    network.zero_grad(set_to_none=True)
    (output * seeded(1, tuple(output.shape), str(output.device))).sum().backward()
    missing = [n for n, p in network.named_parameters() if p.requires_grad and p.grad is None]
    expect(not missing, f"{what}: no gradient reaches {missing[:5]} (a parameter outside the graph also "
                        f"breaks DistributedDataParallel)")
    bad = [n for n, p in network.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    expect(not bad, f"{what}: non-finite gradients in {bad[:5]}")
    expect(any(p.grad is not None and bool(p.grad.any()) for p in network.parameters()),
           f"{what}: every gradient is zero")


def round_trip(make: Callable[[int], nn.Module], network: nn.Module) -> nn.Module:
    """A second instance, built with another seed, loaded from ``network``'s state saved to bytes and read
    back with ``weights_only`` (as checkpoints are)."""
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    buffer.seek(0)
    other = make(1)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    return other


def check_generator(ck: Checker, make: Callable[[int], Any]) -> None:
    """Shape, dtype and scale, labels, determinism, gradients, no_grad, bf16 autocast, state-dict round trip."""
    G: Generator = make(0)
    with ck.clause("a Generator with a positive z_dim, num_classes ≥ 0 and an output_shape"):
        expect(isinstance(G, Generator), f"built a {type(G).__name__}")
        expect(G.z_dim > 0 and G.num_classes >= 0, f"z_dim {G.z_dim}, num_classes {G.num_classes}")
        expect(len(G.output_shape) in (1, 3), f"output_shape {G.output_shape}")
    shape, K = tuple(G.output_shape), G.num_classes
    images = len(shape) == 3

    def forward(n: int, seed: int, train: bool, device: str) -> None:
        G.to(device).train(train)
        z, c = seeded(seed, (n, G.z_dim), device), labels(K, n, seed, device)
        x = G(z, c)
        expect(tuple(x.shape) == (n, *shape), f"output shape {tuple(x.shape)}, expected {(n, *shape)}")
        expect(x.dtype == torch.float32, f"output dtype {x.dtype} for float32 latents")
        expect(x.device.type == device, f"output on {x.device} for latents on {device}")
        expect(bool(torch.isfinite(x).all()), "non-finite output")

    ck.holds("G(z, c) has shape (N, *output_shape), dtype float32 and finite values, in training and eval mode, "
             "on every device present", forward, n=st.integers(2, MAX_BATCH), seed=st.integers(0, 2**16),
             train=st.booleans(), device=st.sampled_from(devices()))
    G.cpu()
    with ck.clause("a batch of one works in eval mode (sampling one image)"):
        forward(1, 0, False, "cpu")
    if images:
        with ck.clause("images are on the data's [-1, 1] scale at initialisation (at most 1% beyond ±1.5)"):
            G.eval()
            with torch.no_grad():
                x = G(seeded(2, (16, G.z_dim)), labels(K, 16, 2))
            share, peak = float((x.abs() > 1.5).float().mean()), float(x.abs().max())
            expect(share <= 0.01, f"{share:.1%} of values beyond ±1.5 (max |x| {peak:.3g})")

    def alone(n: int, seed: int) -> None:
        G.eval()
        z, c = seeded(seed, (n, G.z_dim)), labels(K, n, seed)
        with torch.no_grad():
            batch, again = G(z, c), G(z, c)
            expect(torch.equal(batch, again), "two calls with the same z and c differ")
            for i in range(n):
                one = G(z[i:i + 1], None if c is None else c[i:i + 1])
                expect(torch.allclose(one[0], batch[i], **CLOSE),
                       f"sample {i} computed alone differs from the same sample in the batch by "
                       f"{float((one[0] - batch[i]).abs().max()):.3g}")

    ck.holds("in eval mode G(z, c) is a function of z and c: the same twice, and the same alone as in a batch",
             alone, n=st.integers(2, MAX_BATCH), seed=st.integers(0, 2**16))
    if K:
        with ck.clause("the class changes the sample (the conditional path uses c)"):
            G.eval()
            z = seeded(3, (1, G.z_dim)).expand(K, -1).contiguous()
            with torch.no_grad():
                x = G(z, torch.arange(K))
            expect(not torch.allclose(x[0], x[1]), "one z with classes 0 and 1 gives the same sample")
    with ck.clause("gradients reach every parameter and are finite"):
        G.train()
        check_trainable(G, G(seeded(4, (4, G.z_dim)), labels(K, 4, 4)), "G")
    with ck.clause("under torch.no_grad the output equals the output with gradients, and has no graph"):
        G.eval()
        z, c = seeded(5, (3, G.z_dim)), labels(K, 3, 5)
        with torch.no_grad():
            quiet = G(z, c)
        expect(not quiet.requires_grad, "the output requires grad under no_grad")
        expect(torch.equal(quiet, G(z, c).detach()), "no_grad changes the output")
    with ck.clause("under bf16 autocast the output has the right shape, is finite and near the float32 one, on "
                   "every device present"):
        G.eval()  # one sample: CPUs without native bfloat16 run it a hundred times slower than float32
        for device in devices():
            G.to(device)
            z, c = seeded(6, (1, G.z_dim), device), labels(K, 1, 6, device)
            with torch.no_grad():
                full = G(z, c)
                with torch.autocast(device, dtype=torch.bfloat16):
                    half = G(z, c)
            expect(tuple(half.shape) == tuple(full.shape), f"{device}: shape {tuple(half.shape)}")
            expect(bool(torch.isfinite(half).all()), f"{device}: non-finite output")
            error = float((half.float() - full).norm() / full.norm().clamp_min(1e-12))
            expect(error < 0.25, f"{device}: relative error {error:.3g} against float32")
        G.cpu()
    with ck.clause("a state dict saved and loaded (weights_only) into a new instance reproduces its samples"):
        G.eval()
        other = round_trip(make, G).eval()
        z, c = seeded(8, (3, G.z_dim)), labels(K, 3, 8)
        with torch.no_grad():
            expect(torch.equal(other(z, c), G(z, c)), "the loaded generator's samples differ")


def check_discriminator(ck: Checker, make: Callable[[int], Any], shape: tuple[int, ...]) -> None:
    """Logit shape, twice differentiable in x, batch independence, gradients, state-dict round trip."""
    D: Discriminator = make(0)
    with ck.clause("a Discriminator with num_classes ≥ 0"):
        expect(isinstance(D, Discriminator), f"built a {type(D).__name__}")
        expect(D.num_classes >= 0, f"num_classes {D.num_classes}")
    K = D.num_classes

    def logits(n: int, seed: int, train: bool, device: str) -> None:
        D.to(device).train(train)
        out = D(seeded(seed, (n, *shape), device).clamp(-1, 1), labels(K, n, seed, device))
        expect(tuple(out.shape) == (n,), f"logits of shape {tuple(out.shape)}, expected ({n},)")
        expect(out.dtype == torch.float32 and bool(torch.isfinite(out).all()), f"dtype {out.dtype} or non-finite")

    ck.holds("D(x, c) returns finite float32 logits of shape (N,), in training and eval mode, on every device "
             "present", logits, n=st.integers(2, MAX_BATCH), seed=st.integers(0, 2**16), train=st.booleans(),
             device=st.sampled_from(devices()))
    D.cpu()

    def twice(n: int, seed: int) -> None:
        D.train()
        D.zero_grad(set_to_none=True)
        x = seeded(seed, (n, *shape)).clamp(-1, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x, labels(K, n, seed)).sum(), x, create_graph=True)
        expect(grad.shape == x.shape and bool(torch.isfinite(grad).all()), "the input gradient is not finite")
        grad.square().sum().backward()
        reached = [p.grad for p in D.parameters() if p.requires_grad]
        expect(any(g is not None for g in reached), "the gradient penalty's backward reaches no parameter")
        expect(all(g is None or bool(torch.isfinite(g).all()) for g in reached), "non-finite second-order gradients")

    ck.holds("D is twice differentiable in x: R1's ‖∇ₓD‖² backpropagates to its parameters", twice,
             n=st.integers(2, MAX_BATCH), seed=st.integers(0, 2**16))
    if D.batch_dependent:
        ck.note("batch independence not checked: the discriminator declares batch_dependent")
    else:
        def independent(n: int, others: int, seed: int) -> None:
            D.train()
            x, c = seeded(seed, (n + others, *shape)).clamp(-1, 1), labels(K, n + others, seed)
            with torch.no_grad():
                mixed = D(x, c)[:n]
                alone = D(x[:n], None if c is None else c[:n])
            expect(torch.allclose(mixed, alone, **CLOSE),
                   f"logits change by {float((mixed - alone).abs().max()):.3g} when other samples join the batch")

        ck.holds("in training mode one sample's logit does not depend on the others in its batch", independent,
                 n=st.integers(1, 3), others=st.integers(1, 3), seed=st.integers(0, 2**16))
    with ck.clause("gradients reach every parameter and are finite"):
        D.train()
        check_trainable(D, D(seeded(9, (4, *shape)).clamp(-1, 1), labels(K, 4, 9)), "D")
    with ck.clause("a state dict saved and loaded (weights_only) into a new instance reproduces its logits"):
        D.eval()
        other = round_trip(make, D).eval()
        x, c = seeded(11, (3, *shape)).clamp(-1, 1), labels(K, 3, 11)
        with torch.no_grad():
            expect(torch.equal(other(x, c), D(x, c)), "the loaded discriminator's logits differ")
