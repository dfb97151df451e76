"""The digit classifier of the stacked-digits mode-coverage metric: shipped weights, retraining, resized inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from gancore.builtin.datasets.base import resize_images
from gancore.builtin.datasets.digits import digit_images
from gancore.builtin.metrics import digit_classifier
from gancore.errors import GancoreError


@pytest.fixture(scope="module")
def digits() -> tuple[Tensor, Tensor]:
    """The 1797 digits at 8×8 and their classes."""
    return digit_images(8)


@pytest.fixture(scope="module")
def held_out(digits: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """The held-out digits of the default split and their classes."""
    images, classes = digits
    _, test_idx = digit_classifier.split()
    return images[test_idx], classes[test_idx]


def test_split_holds_out_a_disjoint_share() -> None:
    train_idx, test_idx = digit_classifier.split()
    assert len(test_idx) == round(0.3 * 1797)
    assert not set(train_idx.tolist()) & set(test_idx.tolist())
    assert torch.cat([train_idx, test_idx]).sort().values.equal(torch.arange(1797))
    assert digit_classifier.split()[1].equal(test_idx)
    assert not digit_classifier.split(seed=1)[1].equal(test_idx)


def test_shipped_weights_classify_held_out_digits(held_out: tuple[Tensor, Tensor]) -> None:
    model = digit_classifier.load()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert digit_classifier.WEIGHTS.stat().st_size < 200_000
    assert digit_classifier.accuracy(model, *held_out) >= 0.97


@pytest.mark.parametrize("resolution", [16, 32])
def test_shipped_weights_classify_resized_digits(held_out: tuple[Tensor, Tensor], resolution: int) -> None:
    images, classes = held_out
    resized = resize_images(images, resolution)
    assert resized.shape == (len(images), 1, resolution, resolution)
    assert digit_classifier.accuracy(digit_classifier.load(), resized, classes) >= 0.95


def test_script_retrains_an_accurate_classifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held_out: tuple[Tensor, Tensor]
) -> None:
    out = tmp_path / "retrained.pt"
    assert digit_classifier.main(["--seed", "1", "--out", str(out)]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    model = digit_classifier.DigitClassifier()
    model.load_state_dict(torch.load(out, weights_only=True))
    assert all(value.dtype == torch.float32 for value in model.state_dict().values())
    assert digit_classifier.accuracy(model, *held_out) >= 0.97


def test_load_without_weights_says_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digit_classifier, "WEIGHTS", tmp_path / "missing.pt")
    with pytest.raises(GancoreError, match=r"reinstall gancore or run `python -m gancore\.builtin\.metrics\.digit_"):
        digit_classifier.load()


def test_rejects_images_that_are_not_square_greyscale() -> None:
    with pytest.raises(ValueError, match="square greyscale"):
        digit_classifier.DigitClassifier()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
