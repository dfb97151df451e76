"""The building blocks of R3GAN's Config E: MSR-initialised convolutions, biased leaky ReLUs,
inverted-bottleneck residual blocks, low-pass resampling, and the 4×4 bases at either end.

Layers keep fp32 weights and compute in their input's dtype, so a whole stage runs in bfloat16
by casting only its input (the authors' mixed precision).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2 / (1 + LEAKY_SLOPE**2))
"""The gain that keeps a signal's second moment through a leaky ReLU followed by an MSR-initialised layer."""


def msr_init_(weight: Tensor, gain: float) -> Tensor:
    """He ("MSR") initialisation in place: N(0, (gain/√fan_in)²), fan_in = inputs per output unit."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        return weight.normal_(0, gain / math.sqrt(fan_in)) if gain else weight.zero_()


class Conv(nn.Conv2d):
    """A bias-free 'same' convolution, MSR-initialised with ``gain``; computes in its input's dtype."""

    def __init__(self, inputs: int, outputs: int, kernel_size: int, groups: int = 1, gain: float = 1.0) -> None:
        super().__init__(inputs, outputs, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
        msr_init_(self.weight, gain)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight.to(x.dtype), None)


class Linear(nn.Linear):
    """A bias-free linear layer, MSR-initialised with ``gain``; computes in its input's dtype."""

    def __init__(self, inputs: int, outputs: int, gain: float = 1.0) -> None:
        super().__init__(inputs, outputs, bias=False)
        msr_init_(self.weight, gain)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.to(x.dtype))


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2) with a learned per-channel bias b (zero at first): the network's only biases."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return F.leaky_relu(x + self.bias.to(x.dtype).view(shape), LEAKY_SLOPE)


class ResidualBlock(nn.Module):
    """x + 1×1 → act → grouped k×k → act → 1×1, widening C to C·expansion inside (an inverted bottleneck).

    Fix-up initialisation: the first two convolutions get gain LEAKY_GAIN·L^(−1/4) for a network of
    L blocks, the last is zero, so the block is the identity at initialisation.
    """

    def __init__(self, channels: int, cardinality: int, expansion: int, kernel_size: int, total_blocks: int) -> None:
        super().__init__()
        inner = channels * expansion
        gain = LEAKY_GAIN * total_blocks ** (-1 / (2 * 3 - 2))
        self.expand = Conv(channels, inner, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(inner)
        self.grouped = Conv(inner, inner, kernel_size, groups=cardinality, gain=gain)
        self.act2 = BiasedLeakyReLU(inner)
        self.project = Conv(inner, channels, 1, gain=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.act2(self.grouped(self.act1(self.expand(x)))))


def lowpass_kernel(taps: tuple[float, ...] = (1, 2, 1)) -> Tensor:
    """The 2-D resampling filter: ``taps`` convolved with [1, 1] ([1, 2, 1] → [1, 3, 3, 1]), outer product, sum 1."""
    k = torch.tensor(taps, dtype=torch.float64)
    k = F.conv1d(F.pad(k.view(1, 1, -1), (1, 1)), torch.ones(1, 1, 2, dtype=torch.float64)).view(-1)
    kernel = torch.outer(k, k)
    return (kernel / kernel.sum()).float()


class Resample(nn.Module):
    """2× up- or downsampling of every channel with the fixed low-pass kernel (bilinear with anti-aliasing).

    Up: a stride-2 transposed convolution with the kernel ×4; down: a stride-2 convolution.
    """

    def __init__(self, direction: str) -> None:
        super().__init__()
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        self.direction = direction
        kernel = lowpass_kernel()
        self.register_buffer("kernel", kernel * 4 if direction == "up" else kernel, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, *self.kernel.shape)
        pad = (self.kernel.shape[0] - 2) // 2
        if self.direction == "up":
            return F.conv_transpose2d(x, weight, stride=2, padding=pad, groups=channels)
        return F.conv2d(x, weight, stride=2, padding=pad, groups=channels)


class Upsample(nn.Module):
    """G's transition between stages: a 1×1 convolution where the width changes, then 2× upsampling."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv = Conv(inputs, outputs, 1) if inputs != outputs else nn.Identity()
        self.resample = Resample("up")

    def forward(self, x: Tensor) -> Tensor:
        return self.resample(self.conv(x))


class Downsample(nn.Module):
    """D's transition between stages: 2× downsampling, then a 1×1 convolution where the width changes."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.resample = Resample("down")
        self.conv = Conv(inputs, outputs, 1) if inputs != outputs else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.resample(x))


class GenerativeBasis(nn.Module):
    """G's start: a learned 4×4 tensor per channel (N(0, 1) at first), scaled channel-wise by a linear map of the input."""

    def __init__(self, inputs: int, channels: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, 4, 4))
        self.linear = Linear(inputs, channels)

    def forward(self, w: Tensor) -> Tensor:
        return self.basis.to(w.dtype).unsqueeze(0) * self.linear(w)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """D's end: a 4×4 depthwise convolution to 1×1 (a learned basis per channel), then a linear map."""

    def __init__(self, channels: int, outputs: int) -> None:
        super().__init__()
        self.basis = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        msr_init_(self.basis.weight, 1.0)
        self.linear = Linear(channels, outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(F.conv2d(x, self.basis.weight.to(x.dtype), groups=x.shape[1]).flatten(1))


class Stage(nn.Sequential):
    """One resolution of a network; its input is cast to ``dtype`` so the whole stage computes in it."""

    def __init__(self, *layers: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(*layers)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.to(self.dtype))
