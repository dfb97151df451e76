"""Layers shared by BigGAN and BigGAN-deep: class-conditional BatchNorm, the self-attention block, initialisation.

None of them normalises its weights: spectral norm is added from outside (gancore-sn's ``spectral_norm``
regularizer) to every convolution, linear layer and embedding, as BigGAN does.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Init = Literal["ortho", "normal", "xavier"]
"""The authors' G_init / D_init: orthogonal (ImageNet), N(0, 0.02) (CIFAR-10), Xavier/Glorot uniform."""


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose per-channel gain and bias are predicted for each sample (BigGAN's conditional BN).

    gain = 1 + W_gain·y (+ E_gain[c]) and bias = W_shift·y (+ E_shift[c]), where ``y`` is the conditioning
    vector (shared class embedding and/or latent chunk; ``cond_dim`` features) and ``E`` are per-class embeddings
    (``num_classes`` > 0: BigGAN without a shared embedding, where each BN embeds the class itself). The
    normalisation is an ``nn.BatchNorm2d`` without affine parameters, so the core's cross-replica swap covers it.
    With neither conditioning it is a plain BatchNorm with a learned affine transform.
    """

    def __init__(self, channels: int, cond_dim: int, num_classes: int, eps: float) -> None:
        super().__init__()
        conditioned = cond_dim > 0 or num_classes > 0
        self.norm = nn.BatchNorm2d(channels, eps=eps, affine=not conditioned)
        self.gain = nn.Linear(cond_dim, channels, bias=False) if cond_dim else None
        self.shift = nn.Linear(cond_dim, channels, bias=False) if cond_dim else None
        self.gain_embed = nn.Embedding(num_classes, channels) if num_classes else None
        self.shift_embed = nn.Embedding(num_classes, channels) if num_classes else None

    def forward(self, x: Tensor, y: Tensor | None, c: Tensor | None) -> Tensor:
        h = self.norm(x)
        gain: Tensor | None = None
        shift: Tensor | None = None
        if self.gain is not None and self.shift is not None:
            gain, shift = self.gain(y), self.shift(y)
        if self.gain_embed is not None and self.shift_embed is not None:
            gain = self.gain_embed(c) if gain is None else gain + self.gain_embed(c)
            shift = self.shift_embed(c) if shift is None else shift + self.shift_embed(c)
        if gain is None or shift is None:
            return h
        return h * (1 + gain)[:, :, None, None] + shift[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN's non-local block as BigGAN uses it: x + γ·o(softmax(θ(x)ᵀφ(x))·g(x)), γ learned from 0.

    θ, φ: 1×1 convolutions C → C/8; g: C → C/2; φ and g are max-pooled 2×2 (a quarter of the keys); o: C/2 → C.
    No biases. With γ = 0 at initialisation the block starts as the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, _, height, width = x.shape
        queries = self.theta(x).flatten(2)  # (N, C/8, HW)
        keys = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        values = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        attention = torch.softmax(queries.transpose(1, 2) @ keys, dim=-1)  # (N, HW, HW/4)
        attended = (values @ attention.transpose(1, 2)).view(n, -1, height, width)
        return x + self.gamma * self.o(attended)


def initialise(network: nn.Module, init: Init) -> None:
    """Initialise the weight of every convolution, linear layer and embedding as the authors' ``init_weights``.

    Biases keep PyTorch's defaults, as in the authors' code; BatchNorm parameters and γ are left alone.
    """
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            if init == "ortho":
                nn.init.orthogonal_(module.weight)
            elif init == "normal":
                nn.init.normal_(module.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(module.weight)


def upsample(x: Tensor) -> Tensor:
    """Nearest-neighbour 2× upsampling, as in every BigGAN up block."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def output_layer(channels: int, image_channels: int, eps: float) -> nn.Sequential:
    """The generators' last layers: BatchNorm (with its own affine), ReLU, 3×3 conv to the image (tanh follows)."""
    to_image = nn.Conv2d(channels, image_channels, 3, padding=1)
    return nn.Sequential(nn.BatchNorm2d(channels, eps=eps), nn.ReLU(), to_image)


class ProjectionHead(nn.Module):
    """The discriminators' output: linear(h) + ⟨embed(c), h⟩ on the pooled features (Miyato & Koyama's projection).

    Without classes it is the linear term alone.
    """

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features) if num_classes else None

    def forward(self, h: Tensor, c: Tensor | None) -> Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(dim=1)
        return out.float()


def labels(c: Tensor | None, num_classes: int) -> Tensor | None:
    """The labels a conditional network needs (an error if they are missing); None for an unconditional one."""
    if not num_classes:
        return None
    if c is None:
        raise ValueError(f"this network is conditional on {num_classes} classes: pass labels c of shape (N,)")
    return c


def attention_index(sides: list[int], attention: int | None) -> int | None:
    """Index of the first block whose output side is ``attention`` (the attention block follows it), or None."""
    return sides.index(attention) if attention is not None else None
