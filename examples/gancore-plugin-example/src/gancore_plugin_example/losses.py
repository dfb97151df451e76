"""A relativistic hinge loss: D ranks each real above its paired fake by a margin."""

from __future__ import annotations

from typing import Annotated

import torch.nn.functional as F
from gancore import Loss, component
from pydantic import Field
from torch import Tensor


@component("loss", "relativistic_hinge", examples=[{"margin": 1.0}, {"margin": 0.25}])
class RelativisticHingeLoss(Loss):
    """Relativistic paired hinge loss (Jolicoeur-Martineau): D: relu(m − (r − f)); G: relu(m − (f − r)).

    The relativistic GAN with f(y) = max(0, m − y): real and fake logits are paired index by
    index, and G's loss treats the real logits as constants.
    """

    relativistic = True

    def __init__(
        self,
        margin: Annotated[float, Field(gt=0, description="m, by how much D should rank a real above its fake")]
        = 1.0,
    ) -> None:
        self.margin = margin

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        _check_paired(real_logits, fake_logits)
        return F.relu(self.margin - (real_logits - fake_logits)).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        if real_logits is None:
            raise ValueError("relativistic_hinge is relativistic: the generator's loss needs D's logits on reals")
        _check_paired(real_logits, fake_logits)
        return F.relu(self.margin - (fake_logits - real_logits.detach())).mean()


def _check_paired(real_logits: Tensor, fake_logits: Tensor) -> None:
    """Refuse logits of different shapes, which broadcasting would pair all against all."""
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            f"relativistic_hinge pairs real and fake logits index by index, but their shapes differ: "
            f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}"
        )
