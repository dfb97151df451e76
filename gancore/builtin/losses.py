"""Adversarial losses: the two scalar objectives computed from D's logits on real and fake samples."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from gancore.components import component
from gancore.interfaces import Loss


@component("loss", "nonsaturating")
class NonSaturatingLoss(Loss):
    """Goodfellow et al.'s GAN loss with the non-saturating generator objective −log σ(D(G(z))).

    D: softplus(−r) + softplus(f); G: softplus(−f), written with softplus so large logits stay finite.
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        return F.softplus(-fake_logits).mean()


@component("loss", "hinge")
class HingeLoss(Loss):
    """Hinge loss (Lim & Ye; SAGAN, BigGAN): D: relu(1 − r) + relu(1 + f); G: −f.

    D stops pushing a sample once its logit is beyond the margin of 1.
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        return -fake_logits.mean()


@component("loss", "wasserstein")
class WassersteinLoss(Loss):
    """Wasserstein critic loss (Arjovsky et al.): D: f − r; G: −f.

    Needs a Lipschitz constraint on D (wgan_gp, spectral norm) to be meaningful.
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        return -fake_logits.mean()


@component("loss", "least_squares")
class LeastSquaresLoss(Loss):
    """Least-squares GAN (Mao et al.) with targets a=0, b=1, c=1: D: ½(r − 1)² + ½f²; G: ½(f − 1)².

    Penalises samples by their distance to the target rather than by a saturating log-loss.
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        return 0.5 * (fake_logits - 1).square().mean()


@component("loss", "rpgan")
class RelativisticPairingLoss(Loss):
    """Relativistic pairing GAN loss (RpGAN, as in R3GAN): D: softplus(f − r); G: softplus(r − f).

    Real and fake logits are paired index by index; G's loss treats the real logits as constants.
    """

    relativistic = True

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        _check_paired(real_logits, fake_logits)
        return F.softplus(fake_logits - real_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        if real_logits is None:
            raise ValueError("the rpgan loss is relativistic: the generator's loss needs D's logits on reals")
        _check_paired(real_logits, fake_logits)
        return F.softplus(real_logits.detach() - fake_logits).mean()


def _check_paired(real_logits: Tensor, fake_logits: Tensor) -> None:
    """Refuse logits that cannot be paired index by index (broadcasting would pair every real with every fake)."""
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            f"a relativistic loss pairs real and fake logits index by index, but their shapes differ: "
            f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}"
        )


COMPONENTS: list[type[Loss]] = [NonSaturatingLoss, HingeLoss, WassersteinLoss, LeastSquaresLoss,
                                RelativisticPairingLoss]
