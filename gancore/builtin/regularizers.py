"""Penalties added to a network's loss: gradient penalties on D and weight decay."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from gancore.components import component
from gancore.interfaces import PenaltyContext, Regularizer
from gancore.schedule import Schedule, Scheduled, within

Gamma = Annotated[
    Scheduled,
    within(ge=0),
    Field(description="γ, the penalty's weight: a number or a schedule over kimg"),
]


class _ZeroCenteredPenalty(Regularizer):
    """(γ/2)·E_batch[‖∇ₓD(x)‖²] on the inputs named by the subclass's ``input_gradients``."""

    ideal_gradient_norm = 0.0

    def __init__(self, gamma: Gamma = 1.0) -> None:
        self.gamma: Schedule = gamma

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        gamma = self.gamma(ctx.kimg)
        if gamma == 0:
            return torch.zeros((), dtype=ctx.fake.dtype, device=ctx.fake.device)
        (which,) = self.input_gradients
        grad = ctx.input_gradient(which)
        return 0.5 * gamma * grad.square().flatten(1).sum(1).mean()


@component("regularizer", "r1")
class R1(_ZeroCenteredPenalty):
    """R1 penalty (Mescheder et al.): (γ/2)·E[‖∇ₓD(x)‖²] on reals, pushing D's gradient to zero on the data.

    Computed every step, never lazily (there is no ``every``), as in R3GAN; γ may follow a schedule.
    """

    input_gradients = ("real",)


@component("regularizer", "r2")
class R2(_ZeroCenteredPenalty):
    """R2 penalty: (γ/2)·E[‖∇ₓD(x)‖²] on fakes, the counterpart of R1 that R3GAN pairs with it.

    Computed every step, never lazily (there is no ``every``); γ may follow a schedule.
    """

    input_gradients = ("fake",)


@component("regularizer", "wgan_gp")
class WGANGP(Regularizer):
    """WGAN-GP (Gulrajani et al.): λ·E[(‖∇D(x̂)‖ − c)²] on random interpolates of reals and fakes.

    x̂ = εx_real + (1 − ε)x_fake with ε ~ U(0, 1) per sample; one extra forward and double backward through D.
    """

    def __init__(
        self,
        weight: Annotated[float, Field(ge=0, description="λ")] = 10.0,
        center: Annotated[float, Field(ge=0, description="target gradient norm c; 0 gives a zero-centred penalty")]
        = 1.0,
    ) -> None:
        self.weight = weight
        self.ideal_gradient_norm = center

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        real, fake = ctx.real.detach(), ctx.fake.detach()
        eps = torch.rand(_per_sample(real), dtype=real.dtype, device=real.device)
        return self.weight * _norm_penalty(ctx, torch.lerp(fake, real, eps), self.ideal_gradient_norm)


@component("regularizer", "dragan")
class DRAGAN(Regularizer):
    """DRAGAN (Kodali et al.): λ·E[(‖∇D(x̂)‖ − 1)²] at noisy points around the reals, keeping D smooth there.

    As in the authors' code: x_p = x + k·std(x)·u (std over the whole batch, u ~ U(0, 1) per element) and
    x̂ = x + α(x_p − x) with α ~ U(0, 1) per sample, k being ``perturbation``.
    """

    ideal_gradient_norm = 1.0

    def __init__(
        self,
        weight: Annotated[float, Field(ge=0, description="λ")] = 10.0,
        perturbation: Annotated[float, Field(ge=0, description="k: noise scale relative to the batch's std")] = 0.5,
    ) -> None:
        self.weight = weight
        self.perturbation = perturbation

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        real = ctx.real.detach()
        alpha = torch.rand(_per_sample(real), dtype=real.dtype, device=real.device)
        scale = self.perturbation * real.std(correction=0)
        x_hat = real + alpha * scale * torch.rand_like(real)
        return self.weight * _norm_penalty(ctx, x_hat, self.ideal_gradient_norm)


@component("regularizer", "l2")
class L2(Regularizer):
    """Weight decay as a loss term: λ·Σ‖W‖² over the trainable parameters of the targeted network.

    Unlike an optimiser's decoupled weight decay, it goes through the loss (and Adam's scaling).
    """

    def __init__(
        self,
        weight: Annotated[float, Field(ge=0, description="λ")] = 1e-4,
        target: Literal["generator", "discriminator", "both"] = "discriminator",
    ) -> None:
        self.weight = weight
        self.targets = ("generator", "discriminator") if target == "both" else (target,)

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        squares = [p.square().sum() for p in ctx.network.parameters() if p.requires_grad]
        return self.weight * torch.stack(squares).sum()


def _per_sample(x: Tensor) -> tuple[int, ...]:
    """Shape of one random number per sample, broadcastable against ``x``."""
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def _norm_penalty(ctx: PenaltyContext, x_hat: Tensor, center: float) -> Tensor:
    """E[(‖∇D(x̂)‖ − center)²] through the trainer's critic, keeping the graph for the backward pass."""
    x_hat.requires_grad_(True)
    logits = ctx.critic(x_hat, ctx.labels)
    (grad,) = torch.autograd.grad(logits.sum(), x_hat, create_graph=True)
    return (torch.linalg.vector_norm(grad.flatten(1), dim=1) - center).square().mean()


COMPONENTS: list[type[Regularizer]] = [R1, R2, WGANGP, DRAGAN, L2]
