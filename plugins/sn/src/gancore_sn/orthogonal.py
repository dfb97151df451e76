"""BigGAN's orthogonal regularisation (Brock et al., ICLR 2019, §3.1) as a penalty, and orthogonal initialisation
(Saxe et al., ICLR 2014) as a build-time change."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from gancore import PenaltyContext, Regularizer, component
from pydantic import Field
from torch import Tensor, nn

from gancore_sn.layers import (
    Exclude,
    Include,
    LayerError,
    Targets,
    distinct_targets,
    full_precision,
    matches,
    plain_name,
    raw_weight,
    select_layers,
)
from gancore_sn.spectral import SpectralNormWeight

ParameterExclude = Annotated[list[str], Field(
    description="glob patterns (fnmatch) on parameter names as named_parameters() gives them, e.g. 'shared.*'; a "
    "parameter under a parametrization also matches by its plain name (a.weight for a.parametrizations.weight."
    "original)")]


def gram_penalty(w: Tensor, full: bool) -> Tensor:
    """‖WWᵀ − I‖²_F (``full``) or ‖WWᵀ ⊙ (1 − I)‖²_F of a matrix W, through WᵀW when W has more rows than columns.

    WWᵀ and WᵀW have the same non-zero eigenvalues, so ‖WWᵀ‖_F = ‖WᵀW‖_F, and the diagonal of WWᵀ holds the rows'
    squared norms: a tall weight (24576 × 148 for BigGAN's first layer of G at 128²) costs a 148 × 148 product
    instead of a 24576 × 24576 one.
    """
    rows, cols = w.shape
    if rows <= cols:
        gram = w @ w.T
        if full:
            return (gram - torch.eye(rows, dtype=w.dtype, device=w.device)).square().sum()
        return gram.masked_fill(torch.eye(rows, dtype=torch.bool, device=w.device), 0).square().sum()
    squared_norms = w.square().sum(1)
    total = (w.T @ w).square().sum()
    if full:
        return total - 2 * squared_norms.sum() + rows
    return total - squared_norms.square().sum()


@component("regularizer", "orthogonal", check=distinct_targets)
class Orthogonal(Regularizer):
    """BigGAN's orthogonal regularisation: (β/2)·Σ_W ‖WWᵀ ⊙ (1 − I)‖²_F over the weights of the targeted networks.

    W is every parameter with at least 2 dims, viewed as (dim 0, the other dims flattened), unless ``exclude`` names
    it (BigGAN's recipes exclude G's shared class embedding). The factor ½ makes the penalty's gradient exactly the
    authors' update β·2·(WWᵀ ⊙ (1 − I))·W, which they add to each gradient after backward (so the optimiser sees the
    same gradient either way); ``mode: full`` penalises (β/2)·‖WWᵀ − I‖²_F, of gradient β·2·(WWᵀ − I)·W. A layer under
    spectral_norm is regularised on its raw stored weight (``parametrizations.weight.original``), as the authors'
    SN layers keep the raw weight as their parameter. Computed with autocast off; it does not depend on the batch,
    so every process of a data-parallel run adds the same value.
    """

    def __init__(
        self,
        beta: Annotated[float, Field(ge=0, description="β, the penalty's weight (BigGAN: 1e-4)")] = 1e-4,
        mode: Annotated[Literal["relaxed", "full"], Field(
            description="relaxed: off-diagonal terms only (rows' norms are free); full: ‖WWᵀ − I‖²")] = "relaxed",
        targets: Targets = ["generator"],
        exclude: ParameterExclude = [],
    ) -> None:
        self.beta = beta
        self.full = mode == "full"
        self.targets = tuple(targets)
        self.exclude = tuple(exclude)

    def weights(self, network: nn.Module) -> list[Tensor]:
        """The parameters the penalty acts on: those with at least 2 dims whose name ``exclude`` does not match."""
        return [p for name, p in network.named_parameters()
                if p.ndim >= 2 and not matches(name, self.exclude) and not matches(plain_name(name), self.exclude)]

    def attach(self, network: nn.Module) -> None:
        """Refuse a network whose every weight is excluded: the penalty would be zero without anyone knowing."""
        if not self.weights(network):
            raise LayerError(f"orthogonal: {type(network).__name__} has no parameter with at least 2 dims that "
                             f"exclude {list(self.exclude)} leaves")

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        weights = self.weights(ctx.network)
        if self.beta == 0:
            return weights[0].new_zeros(())
        with full_precision(weights[0].device):
            total = torch.stack([gram_penalty(w.flatten(1), self.full) for w in weights]).sum()
        return 0.5 * self.beta * total


@component("regularizer", "orthogonal_init", check=distinct_targets)
class OrthogonalInit(Regularizer):
    """Orthogonal initialisation (Saxe et al.) of every chosen conv, linear and embedding weight; biases are kept.

    Build-time only, as BigGAN's ImageNet recipes initialise G and D: W, viewed as (dim 0, the other dims flattened),
    gets orthonormal rows or columns (whichever are fewer) times ``gain``, by ``torch.nn.init.orthogonal_`` from
    torch's global generator (which gancore seeds alike on every process before attaching). It may come before or
    after spectral_norm in a recipe: it writes the raw stored weight, and resettles the u, v and σ of a layer that
    is already normalised, so either order leaves orthogonal raw weights with σ estimated on them (only the random
    draws differ between the two orders).
    """

    def __init__(
        self,
        gain: Annotated[float, Field(gt=0, description="every singular value of the initialised W")] = 1.0,
        targets: Targets = ["generator", "discriminator"],
        include: Include = ["*"],
        exclude: Exclude = [],
    ) -> None:
        self.gain = gain
        self.targets = tuple(targets)
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def attach(self, network: nn.Module) -> None:
        chosen = select_layers(network, self.include, self.exclude, "orthogonal_init")
        weights = [raw_weight(name, layer, "orthogonal_init") for name, layer in chosen]
        for (_, layer), weight in zip(chosen, weights):
            nn.init.orthogonal_(weight, gain=self.gain)
            for module in layer.modules():
                if isinstance(module, SpectralNormWeight):
                    module.settle(weight)


COMPONENTS: list[type[Regularizer]] = [Orthogonal, OrthogonalInit]
