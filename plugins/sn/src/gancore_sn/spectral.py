"""Spectral normalisation (Miyato et al., ICLR 2018): each chosen layer's weight divided by a power-iteration
estimate of its largest singular value, as BigGAN applies it to every layer of G and D."""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from gancore import Regularizer, component
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils import parametrize

from gancore_sn.layers import (
    TRANSPOSED,
    Exclude,
    Include,
    LayerError,
    Targets,
    distinct_targets,
    full_precision,
    raw_weight,
    select_layers,
)

SETTLING_ITERATIONS = 15
"""Power iterations run when u and v are created (or the weight is re-initialised), so that σ is a sound
estimate (positive, near the top singular value) before the first training forward."""


class SpectralNormWeight(nn.Module):
    """The parametrization W ↦ W / σ with σ = uᵀ·W·v, W viewed as the matrix (output dim, every other dim).

    ``u`` and ``v`` are persistent buffers (saved and restored with the network), drawn from a normal distribution,
    normalised, then settled by ``SETTLING_ITERATIONS`` power iterations on W. In training mode every evaluation
    of the weight first runs ``n_power_iterations`` steps u ← Wv/‖Wv‖, v ← Wᵀu/‖Wᵀu‖; in eval mode u and v stay
    as they are. σ is computed with u and v as constants, so the gradient reaches W through σ as well, and kept in
    the buffer ``sigma`` (for logging). The estimate is computed with autocast off, in the weight's own dtype.

    Data parallelism: the iteration reads only W and the stored u, v, never the batch, so processes holding
    identical weights and vectors (gancore seeds every process alike before ``attach``, and averages gradients)
    take identical steps and stay identical without any communication.
    """

    u: Tensor
    v: Tensor
    sigma: Tensor

    def __init__(self, weight: Tensor, dim: int, n_power_iterations: int, eps: float) -> None:
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be at least 1, got {n_power_iterations}")
        self.dim = dim
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        rows, cols = self.matrix(weight).shape
        self.register_buffer("u", F.normalize(weight.detach().new_empty(rows).normal_(), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(weight.detach().new_empty(cols).normal_(), dim=0, eps=eps))
        self.register_buffer("sigma", weight.detach().new_zeros(()))
        self.settle(weight)

    def matrix(self, weight: Tensor) -> Tensor:
        """W as a matrix: the output dimension first (dim 1 of a transposed convolution), the rest flattened."""
        return weight.movedim(self.dim, 0).flatten(1)

    def _iterate(self, matrix: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        """New u and v after ``steps`` (≥ 1) power iterations from the stored ones; the buffers are not touched."""
        u, v = self.u, self.v
        for _ in range(steps):
            u = F.normalize(matrix @ v, dim=0, eps=self.eps)
            v = F.normalize(matrix.T @ u, dim=0, eps=self.eps)
        return u, v

    @torch.no_grad()
    def settle(self, weight: Tensor) -> None:
        """Run ``SETTLING_ITERATIONS`` power iterations on the raw ``weight`` and store u, v and σ."""
        with full_precision(weight.device):
            matrix = self.matrix(weight)
            u, v = self._iterate(matrix, SETTLING_ITERATIONS)
            self.u.copy_(u)
            self.v.copy_(v)
            self.sigma.copy_(u @ (matrix @ v))

    def forward(self, weight: Tensor) -> Tensor:
        with full_precision(weight.device):
            matrix = self.matrix(weight)
            if self.training:
                with torch.no_grad():
                    u, v = self._iterate(matrix, self.n_power_iterations)
                    self.u.copy_(u)
                    self.v.copy_(v)
            else:
                # copies: autograd keeps u and v for the backward pass, and a later training forward updates the
                # buffers in place
                u, v = self.u.clone(), self.v.clone()
            sigma = u @ (matrix @ v)
            self.sigma.copy_(sigma.detach())
            return weight / sigma


def sigmas(network: nn.Module) -> dict[str, Tensor]:
    """σ of every spectrally normalised layer of ``network``, by layer name (copies of the ``sigma`` buffers).

    BigGAN watches the top singular values of G's and D's layers: σ of G's first layer explodes at collapse.
    """
    found: dict[str, Tensor] = {}
    for name, module in network.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            for p in module.parametrizations["weight"]:
                if isinstance(p, SpectralNormWeight):
                    found[name] = p.sigma.detach().clone()
    return found


@component("regularizer", "spectral_norm", check=distinct_targets)
class SpectralNorm(Regularizer):
    """Spectral normalisation (Miyato et al.): every chosen conv, linear and embedding weight divided by its σ.

    Build-time only (no penalty): ``attach`` registers a ``SpectralNormWeight`` parametrization (torch's
    ``register_parametrization``) on the weight of each chosen layer, whose raw weight is then stored as
    ``<layer>.parametrizations.weight.original`` and its vectors and σ as ``<layer>.parametrizations.weight.0.u``,
    ``.v`` and ``.sigma``. Attaching to a layer already normalised (spectral_norm listed twice for a network) or
    otherwise parametrized is refused with a LayerError (a ValueError), before any layer is changed.
    """

    def __init__(
        self,
        targets: Targets = ["discriminator"],
        include: Include = ["*"],
        exclude: Exclude = [],
        n_power_iterations: Annotated[int, Field(ge=1, description="power iterations per training forward")] = 1,
        eps: Annotated[float, Field(gt=0, description="floor of the norms when u and v are normalised")] = 1e-12,
    ) -> None:
        self.targets = tuple(targets)
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.n_power_iterations = n_power_iterations
        self.eps = eps

    def attach(self, network: nn.Module) -> None:
        chosen = select_layers(network, self.include, self.exclude, "spectral_norm")
        weights: list[Tensor] = []
        for name, layer in chosen:
            if parametrize.is_parametrized(layer, "weight"):
                stack = layer.parametrizations["weight"]
                if any(isinstance(p, SpectralNormWeight) for p in stack):
                    raise LayerError(f"spectral_norm: layer {name!r} of {type(network).__name__} is already "
                                     f"spectrally normalised; list spectral_norm once per network (its targets "
                                     f"may name both)")
                kinds = ", ".join(type(p).__name__ for p in stack)
                raise LayerError(f"spectral_norm: the weight of layer {name!r} of {type(network).__name__} is "
                                 f"already parametrized ({kinds}); spectral_norm must be its only parametrization")
            weights.append(raw_weight(name, layer, "spectral_norm"))
        for (_, layer), weight in zip(chosen, weights):
            dim = 1 if isinstance(layer, TRANSPOSED) else 0
            normalise = SpectralNormWeight(weight, dim, self.n_power_iterations, self.eps)
            # unsafe only skips torch's check-by-evaluation, which would run one more power iteration; W / σ has
            # W's shape and dtype by construction
            parametrize.register_parametrization(layer, "weight", normalise, unsafe=True)

    def scalars(self, network: nn.Module) -> dict[str, float]:
        """σ of every normalised layer, logged as ``spectral_norm/<network>/sigma/<layer>``."""
        return {f"sigma/{name}": float(sigma) for name, sigma in sigmas(network).items()}


COMPONENTS: list[type[Regularizer]] = [SpectralNorm]
