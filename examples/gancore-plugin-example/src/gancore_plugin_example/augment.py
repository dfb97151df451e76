"""Instance noise (Sønderby et al.; Arjovsky & Bottou): Gaussian noise on everything D sees."""

from __future__ import annotations

from typing import Annotated

import torch
from gancore import Augmenter, component
from pydantic import Field
from torch import Tensor


@component("augmenter", "gaussian_noise", examples=[{"sigma": 0.1, "p": 0.5}, {"sigma": 0.3, "anneal_kimg": 10}])
class GaussianNoise(Augmenter):
    """Instance noise: adds N(0, σ²) to each sample with probability p; σ falls linearly to 0 over anneal_kimg.

    Overlapping the real and fake distributions keeps D's gradients informative early in training.
    The map is x + ε, so gradients reach the inputs unchanged. ``sigma`` is a buffer, saved with ``p``.
    """

    sigma: Tensor

    def __init__(
        self,
        sigma: Annotated[float, Field(ge=0, description="σ at the start of training")] = 0.1,
        p: Annotated[float, Field(ge=0, le=1, description="probability that a sample gets noise")] = 1.0,
        anneal_kimg: Annotated[float, Field(ge=0, description="kimg over which σ falls to 0; 0 keeps σ constant")]
        = 0.0,
    ) -> None:
        super().__init__(p)
        self.sigma_start = sigma
        self.anneal_kimg = anneal_kimg
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def update(self, kimg: float, real_logits: Tensor) -> None:
        """Set σ to its annealed value at ``kimg``: σ₀·max(0, 1 − kimg/anneal_kimg)."""
        if self.anneal_kimg > 0:
            self.sigma.fill_(self.sigma_start * max(0.0, 1.0 - kimg / self.anneal_kimg))

    def forward(self, x: Tensor) -> Tensor:
        chosen = torch.rand(len(x), device=x.device) < self.p
        chosen = chosen.view(-1, *([1] * (x.dim() - 1)))
        return torch.where(chosen, x + self.sigma.to(x.dtype) * torch.randn_like(x), x)
