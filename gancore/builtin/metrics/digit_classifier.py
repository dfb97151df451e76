"""A small CNN that labels scikit-learn's 8×8 digits, trained here, for StackedMNIST-style mode coverage.

Run ``python -m gancore.builtin.metrics.digit_classifier`` to retrain it and rewrite the shipped weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.builtin.datasets.base import resize_images
from gancore.builtin.datasets.digits import digit_images
from gancore.errors import GancoreError

WEIGHTS = Path(__file__).with_name("digit_classifier.pt")
"""The shipped float32 state dict of ``DigitClassifier``, written by ``main``."""
NUM_DIGITS = 1797
"""Images in scikit-learn's digits data set."""
SIDE = 8
"""Side of the images the network sees."""
TRAINING_SIDES = (8, 16, 32)
"""Sides the training digits are drawn at, one per batch, so that the network also knows upsampled digits."""


class DigitClassifier(nn.Module):
    """Two 3×3 convolutions, a 2×2 max-pool and a linear layer: uint8 digits (N, 1, H, W) to logits (N, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * (SIDE // 2) ** 2, 10)

    def forward(self, images: Tensor) -> Tensor:
        """Logits (N, 10) of greyscale images (N, 1, H, W) valued 0..255, square of any side, resized to 8×8."""
        if images.ndim != 4 or images.shape[1] != 1 or images.shape[2] != images.shape[3]:
            raise ValueError(f"expected square greyscale images (N, 1, H, H), got {tuple(images.shape)}")
        x = images.float()
        if x.shape[-1] != SIDE:
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", antialias=True)
        x = x / 127.5 - 1
        return self.head(self.features(x).flatten(1))


def split(seed: int = 0, held_out: float = 0.3) -> tuple[Tensor, Tensor]:
    """Sorted indices (train, held out) of the 1797 digits: a seeded random ``held_out`` share is held out."""
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must lie in (0, 1), got {held_out}")
    order = torch.randperm(NUM_DIGITS, generator=torch.Generator().manual_seed(seed))
    num_held_out = round(held_out * NUM_DIGITS)
    return order[num_held_out:].sort().values, order[:num_held_out].sort().values


def shift(images: Tensor, generator: torch.Generator) -> Tensor:
    """Each image (N, C, H, W) moved by its own random −1, 0 or +1 pixels in each direction, zero-filled."""
    n, c, h, w = images.shape
    padded = F.pad(images, (1, 1, 1, 1))
    dy, dx = torch.randint(3, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[:, None, None], rows, cols]


def train(
    seed: int = 0, epochs: int = 40, batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4
) -> DigitClassifier:
    """A classifier trained on CPU with AdamW on the training digits of ``split()`` only.

    Each digit is shifted by ±1 pixel and each batch resized to a side of ``TRAINING_SIDES``, as data sets of
    digits at other resolutions are made. ``seed`` fixes the initial weights, batch order, shifts and sides;
    the global random state is left untouched.
    """
    images, classes = digit_images(SIDE)
    train_idx, _ = split()
    images, classes = images[train_idx], classes[train_idx]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(images), generator=generator).split(batch_size):
            side = TRAINING_SIDES[int(torch.randint(len(TRAINING_SIDES), (), generator=generator))]
            inputs = resize_images(shift(images[batch], generator), side)
            loss = F.cross_entropy(model(inputs), classes[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, classes: Tensor) -> float:
    """Share of ``images`` (N, 1, H, W) uint8 whose predicted digit equals ``classes`` (N,)."""
    return (model(images).argmax(1) == classes).float().mean().item()


def load() -> DigitClassifier:
    """The shipped classifier on CPU, in eval mode and frozen; GancoreError when its weights file is missing."""
    if not WEIGHTS.is_file():
        raise GancoreError(
            f"the digit classifier's weights {WEIGHTS} are missing; "
            f"reinstall gancore or run `python -m gancore.builtin.metrics.digit_classifier`"
        )
    model = DigitClassifier()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    """Train the classifier, print its train and held-out accuracy and save its weights."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights, batch order and shifts")
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="where to write the state dict")
    args = parser.parse_args(argv)
    model = train(args.seed)
    images, classes = digit_images(SIDE)
    train_idx, test_idx = split()
    print(f"train accuracy    {accuracy(model, images[train_idx], classes[train_idx]):.4f} ({len(train_idx)} digits)")
    print(f"held-out accuracy {accuracy(model, images[test_idx], classes[test_idx]):.4f} ({len(test_idx)} digits)")
    torch.save({name: value.float().contiguous() for name, value in model.state_dict().items()}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
