"""The contracts every component honours: one abstract base class per kind.

The trainer sees components only through these classes, so a plugin that subclasses
them correctly works with every other plugin.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gancore.evaluation import Evaluation

Network = Literal["generator", "discriminator"]
InputName = Literal["real", "fake"]


class Generator(nn.Module, metaclass=ABCMeta):
    """Maps latents to samples.

    Contract: ``forward(z, c=None)`` takes ``z`` of shape (N, z_dim) and, when
    ``num_classes > 0``, integer labels ``c`` of shape (N,) in [0, num_classes); it
    returns a tensor of shape (N, *output_shape). Images are on the data's [-1, 1]
    scale (a generator without a squashing output layer may overshoot it slightly
    during training; images are clamped when written); 2-D toy points (N, 2) are
    in the data's own coordinates.
    """

    cross_replica_batchnorm: bool = False
    """True when the network's BatchNorm statistics should span every process's batch (BigGAN)."""
    standing_statistics: int = 0
    """Batches of random latents whose average BatchNorm statistics replace the running ones before G is
    sampled for grids and metrics (BigGAN's standing statistics); 0 keeps the running statistics."""

    def __init__(self, z_dim: int, num_classes: int, resolution: int, channels: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.resolution = resolution
        self.channels = channels

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (channels, resolution, resolution), or (channels,) when resolution is 0."""
        if self.resolution == 0:
            return (self.channels,)
        return (self.channels, self.resolution, self.resolution)

    def sample_z(self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                 truncation: float | None = None) -> Tensor:
        """Draw n latents from the prior the generator was trained with (standard normal by default).

        With ``truncation`` t, components with |z| > t are drawn again until none is left (BigGAN's
        truncation trick: a truncated normal, not a clamped or rescaled one).
        """
        z = torch.randn(n, self.z_dim, device=device, generator=generator)
        if truncation is not None:
            if truncation <= 0:
                raise ValueError(f"truncation must be positive, got {truncation}")
            # compared in float64: against a float32 tensor, t would be rounded to float32 first and a
            # component up to half an ulp beyond t could stay
            outside = z.abs().double() > truncation
            while outside.any():
                z = torch.where(outside, torch.randn(z.shape, device=z.device, generator=generator), z)
                outside = z.abs().double() > truncation
        return z

    @abstractmethod
    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor: ...


class Discriminator(nn.Module, metaclass=ABCMeta):
    """Scores samples.

    Contract: ``forward(x, c=None)`` takes samples shaped like a generator's output and,
    when ``num_classes > 0``, labels ``c`` (N,); it returns raw logits of shape (N,).
    It must be twice differentiable with respect to ``x`` (gradient penalties need it).
    """

    cross_replica_batchnorm: bool = False
    """True when the network's BatchNorm statistics should span every process's batch."""
    batch_dependent: bool = False
    """True when, in training mode, one sample's logit depends on the others in its batch (BatchNorm,
    minibatch standard deviation); the conformance kit then skips its batch-independence clause."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    @abstractmethod
    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor: ...


class Loss(metaclass=ABCMeta):
    """The adversarial objective, as two scalar losses computed from D's logits.

    Sign convention: both losses are minimised; D's loss falls when real logits rise
    and fake logits fall. ``relativistic`` losses compare real and fake logits paired
    index by index, so G's loss needs D's logits on a real batch as well.
    """

    relativistic: bool = False

    @abstractmethod
    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Scalar loss of D, averaged over the batch."""

    @abstractmethod
    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        """Scalar loss of G, averaged over the batch; ``real_logits`` is given when ``relativistic``."""


@dataclass
class PenaltyContext:
    """What a penalty may look at during one phase of one training step.

    ``critic`` is D as the trainer uses it, ``D(augment(x), c)``, so gradients of its
    output with respect to ``real`` or ``fake`` pass through the augmentation.
    ``real_logits``/``fake_logits`` are the phase's own logits (with their graph), so a
    gradient penalty costs no extra forward pass. In G's phase ``real`` and ``real_logits``
    are None unless the loss is relativistic or G is conditional (then a real batch is drawn).
    ``grad_scale`` is fp16's loss scale: input gradients are taken of the scaled logits (so that
    they do not underflow) and divided by it again.
    """

    network: nn.Module
    critic: Callable[[Tensor, Tensor | None], Tensor]
    real: Tensor | None
    fake: Tensor
    labels: Tensor | None
    real_logits: Tensor | None
    fake_logits: Tensor | None
    kimg: float
    input_gradient_names: tuple[InputName, ...] = ()
    grad_scale: float = 1.0
    _gradients: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def input_gradient(self, which: InputName) -> Tensor:
        """Gradient of the summed logits w.r.t. the real or fake inputs, with its graph kept.

        Every input a penalty asked for (``Regularizer.input_gradients``) is differentiated
        in one backward pass through D, shared by all penalties of the step.
        """
        if which not in self._gradients:
            names = self.input_gradient_names
            if which not in names:
                raise RuntimeError(
                    f"no gradient w.r.t. the {which} inputs was prepared; declare it in the regularizer's "
                    f"input_gradients"
                )
            logits = {"real": self.real_logits, "fake": self.fake_logits}
            inputs = {"real": self.real, "fake": self.fake}
            total = sum(logits[n].sum() for n in names) * self.grad_scale
            grads = torch.autograd.grad(total, [inputs[n] for n in names], create_graph=True)
            self._gradients.update((n, g / self.grad_scale if self.grad_scale != 1 else g) for n, g in zip(names, grads))
        return self._gradients[which]


class Regularizer(metaclass=ABCMeta):
    """A penalty added to a network's loss, a change made to a network when built, or both.

    ``targets`` names the networks it acts on; ``every`` says how often (in that
    network's steps) the penalty is computed. ``input_gradients`` lists the inputs
    ("real", "fake") whose gradient the penalty reads through ``PenaltyContext``.
    """

    targets: tuple[Network, ...] = ("discriminator",)
    every: int = 1
    input_gradients: tuple[InputName, ...] = ()
    nonnegative: bool = True
    """The penalty is never negative (the conformance kit checks it)."""
    ideal_gradient_norm: float | None = None
    """For a penalty on D's input gradients, the gradient norm at which it vanishes (0: R1, R2; WGAN-GP's
    centre; DRAGAN's 1). None: a penalty on weights, which vanishes when they are all zero."""

    def attach(self, network: nn.Module) -> None:
        """Change ``network`` when it is built (normalise weights, initialise); by default nothing."""

    def penalty(self, ctx: PenaltyContext) -> Tensor | None:
        """A scalar added to the targeted network's loss, or None for a build-time-only regularizer."""
        return None

    def scalars(self, network: nn.Module) -> dict[str, float]:
        """What the trainer logs at each log line for one targeted network, as ``<label>/<network>/<key>``
        (spectral norm: each layer's σ, which BigGAN watches for collapse); by default nothing."""
        return {}


class Augmenter(nn.Module, metaclass=ABCMeta):
    """A differentiable map from images to images, applied to everything D sees.

    ``p`` is the probability of augmenting; the trainer may set it, and ``update``
    lets the augmenter schedule or adapt it from D's logits on reals. ``p`` is a
    buffer, so it is saved with the augmenter's state.
    """

    p: Tensor

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))

    def update(self, kimg: float, real_logits: Tensor) -> None:
        """Called after every D step with the progress and D's (detached) logits on reals."""

    def scalars(self) -> dict[str, float]:
        """What the trainer logs as ``Augment/<name>``: p, and whatever statistics the augmenter keeps."""
        return {"p": float(self.p)}

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...


class Metric(metaclass=ABCMeta):
    """Computes named scalars that compare a generator's samples with a data set.

    ``compute`` reads features through the ``Evaluation`` it is given, which embeds samples in shards
    over the processes of a run and shares each embedding between the metrics computed together.
    Every process calls ``compute``; the values of process 0 are kept.
    ``bounds`` and ``identical`` state what the conformance kit checks about the values.
    """

    bounds: dict[str, tuple[float, float]] = {}
    """The closed interval each named value lies in (FID: (0, inf); precision: (0, 1))."""
    identical: dict[str, float] = {}
    """Each named value when the generated set is the real set itself (FID 0; precision and recall 1)."""

    def check(self, dataset: Dataset) -> None:
        """Raise ValueError if this metric cannot measure ``dataset``, or GancoreError when a file it needs
        (a network's weights) cannot be found; called before training or evaluating."""

    @abstractmethod
    def compute(self, evaluation: Evaluation) -> dict[str, float]: ...


class Dataset(torch.utils.data.Dataset, metaclass=ABCMeta):
    """Training data: item ``i`` is ``(x, label)``.

    Images are uint8 tensors (C, H, W) in [0, 255]; points are float32 tensors (D,).
    ``label`` is an int in [0, num_classes), or 0 when ``num_classes`` is 0.
    ``in_memory`` is True when every item is already decoded in memory (fetching costs a gather, so loader
    worker processes gain nothing).
    """

    num_classes: int = 0
    in_memory: bool = False

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Shape of one item's x."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[Tensor, int]: ...


KINDS: dict[str, type] = {
    "generator": Generator,
    "discriminator": Discriminator,
    "loss": Loss,
    "regularizer": Regularizer,
    "augmenter": Augmenter,
    "metric": Metric,
    "dataset": Dataset,
}
"""Every kind of component, with the interface its instances must implement."""
