"""``diffaugment``: DiffAugment's colour, translation and cutout policies."""

from __future__ import annotations

import pytest
import torch
from gancore.errors import ConfigError
from gancore.registry import default_registry

REGISTRY = default_registry()


def diffaugment(*policy: str):  # noqa: ANN201
    return REGISTRY.create("augmenter", "diffaugment", {"policy": list(policy)})


def test_shape_dtype_and_every_image_changed() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64) * 2 - 1
    out = diffaugment("color", "translation", "cutout")(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert all(not torch.equal(a, b) for a, b in zip(out, x))


def test_translation_moves_whole_pixels_within_an_eighth_and_lets_zeros_in() -> None:
    torch.manual_seed(1)
    x = torch.zeros(200, 1, 32, 32)
    x[:, :, 16, 16] = 1.0
    out = diffaugment("translation")(x)
    shifts = set()
    for img in out:
        assert float(img.sum()) == 1.0 and int((img != 0).sum()) == 1  # moved, not blurred
        y, xx = (img[0] == 1).nonzero()[0].tolist()
        shifts.add((xx - 16, y - 16))
    assert max(max(abs(a), abs(b)) for a, b in shifts) == 4 and len(shifts) > 30
    ones = diffaugment("translation")(torch.ones(64, 1, 32, 32))
    assert float((ones == 0).float().mean()) > 0.05  # zero padding, not reflection


def test_cutout_zeroes_a_square_of_half_the_size() -> None:
    torch.manual_seed(2)
    out = diffaugment("cutout")(torch.ones(300, 1, 32, 32))
    zeros = (out == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 16 * 16 and int(zeros.min()) > 0
    assert bool(((out == 0) | (out == 1)).all())  # the rest is untouched
    for img in out[:, 0] == 0:  # the zeros form one axis-aligned rectangle: the square, clipped by the edges
        rows, cols = img.any(1).nonzero().view(-1), img.any(0).nonzero().view(-1)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        assert int(img.sum()) == (r1 - r0 + 1) * (c1 - c0 + 1) and bool(img[r0:r1 + 1, c0:c1 + 1].all())
        height, width = r1 - r0 + 1, c1 - c0 + 1
        assert height <= 16 and width <= 16
        assert height == 16 or r0 == 0 or r1 == 31  # shorter only where the edge clips it
        assert width == 16 or c0 == 0 or c1 == 31
    assert float((zeros == 256).float().mean()) > 0.2  # often wholly inside; clipped at the edges otherwise


def test_colour_keeps_gradients() -> None:
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    diffaugment("color")(x).square().sum().backward()
    assert x.grad is not None and bool(x.grad.isfinite().all()) and float(x.grad.abs().sum()) > 0


def test_a_policy_named_twice_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        REGISTRY.validate_params("augmenter", "diffaugment", {"policy": ["color", "color"]}, "augmenter")
    assert info.value.problems == ["augmenter.params: policy ['color', 'color'] names a transform twice; name each "
                                   "of color, translation, cutout once"]


def test_translation_is_a_whole_pixel_shift_with_zeros_coming_in() -> None:
    torch.manual_seed(3)
    size = 32
    x = torch.rand(50, 3, size, size) + 1  # no zeros inside, so every zero came in from outside
    x[:, :, 16, 16] = 5.0  # a bright pixel, to locate the shift
    out = diffaugment("translation")(x)
    for img, src in zip(out, x):
        y, xx = (img[0] == 5.0).nonzero()[0].tolist()
        dy, dx = y - 16, xx - 16
        assert abs(dy) <= size // 8 and abs(dx) <= size // 8
        expected = torch.zeros_like(src)
        expected[:, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
            src[:, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
        assert torch.equal(img, expected)


def test_p_chooses_whole_images_and_zero_is_the_identity() -> None:
    torch.manual_seed(2)
    x = torch.rand(4000, 3, 8, 8) * 2 - 1
    half = REGISTRY.create("augmenter", "diffaugment", {"p": 0.3})
    changed = (half(x) != x).flatten(1).any(1)
    assert float(changed.float().mean()) == pytest.approx(0.3, abs=0.03)
    none = REGISTRY.create("augmenter", "diffaugment", {"p": 0.0})
    assert torch.equal(none(x), x)
