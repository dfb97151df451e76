"""The FID Inception module: exactly the standard weights file's state dict, and its outputs' shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gancore.builtin.metrics.inception import CLASSES, FEATURES, FIDInception
from gancore.errors import GancoreError

SHAPES = Path(__file__).parent / "data" / "pt_inception-2015-12-05_state_dict_shapes.json"
"""Every key of pt_inception-2015-12-05-6726825d.pth with its shape (from the project's reference facts)."""


@pytest.fixture(scope="module")
def network() -> FIDInception:
    torch.manual_seed(0)
    return FIDInception().eval()


def test_state_dict_has_exactly_the_keys_and_shapes_of_the_weights_file(network: FIDInception) -> None:
    expected = json.loads(SHAPES.read_text())
    ours = {k: list(v.shape) for k, v in network.state_dict().items()}
    assert list(ours) == list(expected)  # same keys, same order
    assert ours == expected
    assert sum(v.numel() for v in network.state_dict().values()) == 23_885_486
    assert all(m.eps == 0.001 for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_forward_gives_2048_features_and_1008_logits_for_any_size_and_grey(network: FIDInception) -> None:
    g = torch.Generator().manual_seed(1)
    for shape in [(2, 3, 32, 32), (1, 1, 28, 28), (2, 3, 299, 299)]:
        images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
        with torch.no_grad():
            features, logits = network(images)
        assert features.shape == (shape[0], FEATURES) and logits.shape == (shape[0], CLASSES)
        assert torch.isfinite(features).all() and (features >= 0).all()  # a mean of ReLU outputs
    with pytest.raises(ValueError, match="expected uint8 images"):
        network(torch.zeros(1, 3, 8, 8))


def test_input_is_resized_bilinearly_to_299_and_scaled_to_minus_one_one() -> None:
    images = torch.tensor([[[[0, 255], [255, 0]]]], dtype=torch.uint8).expand(1, 3, 2, 2)
    x = FIDInception.prepare(images)
    assert x.shape == (1, 3, 299, 299)
    assert float(x.min()) == -1 and float(x.max()) == 1  # the corners keep the pixel values
    assert float(x[0, 0, 0, 0]) == -1 and float(x[0, 0, 0, -1]) == 1
    torch.testing.assert_close(x, torch.nn.functional.interpolate(images.float() / 127.5 - 1, size=(299, 299),
                                                                  mode="bilinear", align_corners=False))


def test_weights_load_from_a_local_file_and_bad_files_are_explained(network: FIDInception, tmp_path: Path) -> None:
    path = tmp_path / "pt_inception.pth"
    torch.save(network.state_dict(), path)
    loaded = FIDInception.from_file(path)
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(images), network(images)))
    with pytest.raises(GancoreError, match="do not exist; get pt_inception-2015-12-05-6726825d.pth"):
        FIDInception.from_file(tmp_path / "missing.pth")
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(GancoreError, match="is not the FID Inception weights file"):
        FIDInception.from_file(tmp_path / "other.pth")
