"""The GAN Landscape networks: sizes and feature maps against the study's layer tables, shapes and ranges,
gradients (first and second order), layer norm against batch norm, the ResBlock's order of operations, validation.

Parameter counts are built on the ``meta`` device; everything else runs on the CPU at small batches.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gancore import CORE_API_VERSION, ConfigError, Discriminator, Generator
from gancore.testing import make_registry
from torch import Tensor, nn

import gancore_landscape
from gancore_landscape.layers import LayerNorm2d, ResBlock
from gancore_landscape.networks import ResNetDiscriminator, ResNetGenerator

REGISTRY = make_registry(gancore_landscape)
NAMES = ["sndcgan", "resnet_cifar", "resnet19"]
SIDE = {"sndcgan": 32, "resnet_cifar": 32, "resnet19": 128}
D_NORMS = ["none", "batch", "layer"]


def build(kind: str, name: str, **params: Any) -> nn.Module:
    return REGISTRY.create(kind, name, params)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- 1. parameter counts, by hand from the study's tables --------------------------------------------------------
# Every convolution, transposed convolution and linear layer has a bias; a normalisation layer (BatchNorm or the
# layer norm) has a learnable scale and offset per channel (BatchNorm's running statistics are buffers).


def conv(k: int, cin: int, cout: int) -> int:
    """k×k convolution or transposed convolution: k·k·cin·cout weights + cout biases."""
    return k * k * cin * cout + cout


def linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def norm(c: int, present: bool) -> int:
    return 2 * c if present else 0


def resblock(cin: int, cout: int, normed: bool) -> int:
    """norm(cin), conv3×3 cin→cout, norm(cout), conv3×3 cout→cout, shortcut conv3×3 cin→cout."""
    return norm(cin, normed) + conv(3, cin, cout) + norm(cout, normed) + conv(3, cout, cout) + conv(3, cin, cout)


def sndcgan_g(normed: bool, z: int = 128, side: int = 32, channels: int = 3) -> int:
    b = side // 8
    return (linear(z, b * b * 512) + norm(512, normed) + conv(4, 512, 256) + norm(256, normed)
            + conv(4, 256, 128) + norm(128, normed) + conv(4, 128, 64) + norm(64, normed) + conv(3, 64, channels))


def sndcgan_d(normed: bool, side: int = 32, channels: int = 3) -> int:
    convs = conv(3, channels, 64) + conv(4, 64, 128) + conv(3, 128, 128) + conv(4, 128, 256) + conv(3, 256, 256) \
        + conv(4, 256, 512) + conv(3, 512, 512)
    norms = sum(norm(c, normed) for c in (128, 128, 256, 256, 512, 512))  # all but the first convolution
    return convs + norms + linear((side // 8) ** 2 * 512, 1)


def resnet_cifar_g(normed: bool) -> int:
    return linear(128, 4 * 4 * 256) + 3 * resblock(256, 256, normed) + norm(256, normed) + conv(3, 256, 3)


def resnet_cifar_d(normed: bool) -> int:
    return resblock(3, 128, normed) + 3 * resblock(128, 128, normed) + linear(128, 1)


def resnet19_g(normed: bool) -> int:
    blocks = [(512, 512), (512, 256), (256, 256), (256, 128), (128, 64)]
    return (linear(128, 4 * 4 * 512) + sum(resblock(a, b, normed) for a, b in blocks) + norm(64, normed)
            + conv(3, 64, 3))


def resnet19_d(normed: bool) -> int:
    blocks = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    return sum(resblock(a, b, normed) for a, b in blocks) + linear(512, 1)


COUNTS = {
    ("generator", "sndcgan"): sndcgan_g, ("discriminator", "sndcgan"): sndcgan_d,
    ("generator", "resnet_cifar"): resnet_cifar_g, ("discriminator", "resnet_cifar"): resnet_cifar_d,
    ("generator", "resnet19"): resnet19_g, ("discriminator", "resnet19"): resnet19_d,
}


@pytest.mark.parametrize(("kind", "name"), list(COUNTS))
def test_parameter_counts_follow_the_layer_tables(kind: str, name: str) -> None:
    norms = ["batch", "none"] if kind == "generator" else D_NORMS
    with torch.device("meta"):
        for normalization in norms:
            net = build(kind, name, normalization=normalization)
            assert count(net) == COUNTS[kind, name](normalization != "none"), normalization


def test_parameter_counts_at_32_by_hand() -> None:
    """The sums above, worked out once more by hand (the numbers the README quotes)."""
    assert sndcgan_g(True) == 1_056_768 + 1_024 + 2_097_408 + 512 + 524_416 + 256 + 131_136 + 128 + 1_731 == 3_813_379
    assert sndcgan_d(False) == 1_792 + 131_200 + 147_584 + 524_544 + 590_080 + 2_097_664 + 2_359_808 + 8_193
    assert sndcgan_d(False) == 5_860_865 and sndcgan_d(True) == 5_860_865 + 3_584
    assert resnet_cifar_g(True) == 528_384 + 3 * 1_771_264 + 512 + 6_915 == 5_849_603
    assert resnet_cifar_d(False) == 154_752 + 3 * 442_752 + 129 == 1_483_137
    assert resnet_cifar_d(True) == 1_483_137 + 6 + 256 + 3 * 512


def test_sndcgan_counts_follow_the_side_and_channels() -> None:
    """G's linear layer and D's last one scale with (side/8)²; the image's channels touch the first and last conv."""
    with torch.device("meta"):
        g = build("generator", "sndcgan", resolution=64, channels=1, z_dim=100)
        d = build("discriminator", "sndcgan", resolution=64, channels=1, normalization="layer")
    assert count(g) == sndcgan_g(True, z=100, side=64, channels=1)
    assert count(d) == sndcgan_d(True, side=64, channels=1)


# -- 2. feature maps, layer by layer ----------------------------------------------------------------------------


def trace(net: nn.Module, x: Tensor, types: tuple[type, ...]) -> list[tuple[int, int]]:
    """(channels, side) of the output of every module of ``types``, in the order the forward pass runs them."""
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append((out.shape[1], out.shape[-1])))
             for m in net.modules() if isinstance(m, types)]
    with torch.no_grad():
        net(x)
    for hook in hooks:
        hook.remove()
    return seen


CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def test_sndcgan_feature_maps() -> None:
    g, d = build("generator", "sndcgan"), build("discriminator", "sndcgan")
    assert trace(g, torch.randn(2, 128), CONVS) == [(256, 8), (128, 16), (64, 32), (3, 32)]
    assert trace(d, torch.randn(2, 3, 32, 32), CONVS) == [(64, 32), (128, 16), (128, 16), (256, 8), (256, 8),
                                                           (512, 4), (512, 4)]
    assert trace(g, torch.randn(2, 128), (nn.Linear,)) == [(4 * 4 * 512, 4 * 4 * 512)]
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.1] * 7


def test_resnet_cifar_feature_maps() -> None:
    """Convolutions run conv1, conv2, shortcut in each block; D's blocks pool after them."""
    g, d = build("generator", "resnet_cifar"), build("discriminator", "resnet_cifar")
    z, x = torch.randn(2, 128), torch.randn(2, 3, 32, 32)
    assert trace(g, z, (ResBlock,)) == [(256, 8), (256, 16), (256, 32)]
    assert trace(g, z, CONVS) == [(256, 8)] * 3 + [(256, 16)] * 3 + [(256, 32)] * 3 + [(3, 32)]
    assert trace(d, x, (ResBlock,)) == [(128, 16), (128, 8), (128, 8), (128, 8)]
    assert trace(d, x, CONVS) == [(128, 32)] * 3 + [(128, 16)] * 3 + [(128, 8)] * 6


def test_resnet19_blocks_and_shapes() -> None:
    """On the meta device (shapes without arithmetic): 4×4 doubled five times to 128, halved six times to 2."""
    with torch.device("meta"):
        g, d = build("generator", "resnet19"), build("discriminator", "resnet19")
        z = torch.empty(2, 128)
        assert trace(g, z, (ResBlock,)) == [(512, 8), (256, 16), (256, 32), (128, 64), (64, 128)]
        x = g(z)
        assert x.shape == (2, 3, 128, 128) and g.output_shape == (3, 128, 128)
        assert trace(d, x, (ResBlock,)) == [(64, 64), (128, 32), (256, 16), (256, 8), (512, 4), (512, 2)]
        assert d(x).shape == (2,)
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.resample) for b in g.blocks] == [
        (512, 512, "up"), (512, 256, "up"), (256, 256, "up"), (256, 128, "up"), (128, 64, "up")]
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.resample) for b in d.blocks] == [
        (3, 64, "down"), (64, 128, "down"), (128, 256, "down"), (256, 256, "down"), (256, 512, "down"),
        (512, 512, "down")]


# -- 3. shapes and ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "side", "channels", "g_norm"), [
    ("sndcgan", 32, 3, "batch"), ("sndcgan", 48, 1, "none"), ("resnet_cifar", 32, 3, "batch"),
    ("resnet_cifar", 32, 1, "none"),
])
def test_shapes_and_ranges(name: str, side: int, channels: int, g_norm: str) -> None:
    torch.manual_seed(0)
    g = build("generator", name, resolution=side, channels=channels, normalization=g_norm)
    d = build("discriminator", name, resolution=side, channels=channels)
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    assert g.output_shape == (channels, side, side) and (g.z_dim, g.num_classes) == (128, 0)
    z = g.sample_z(2)
    with torch.no_grad():
        x = g(z)
        logits = d(x)
    assert x.shape == (2, channels, side, side)
    assert x.abs().max() <= 1 and x.std() > 1e-3, "tanh output, not constant"
    assert (x[0] - x[1]).abs().max() > 1e-4, "different latents, different images"
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    assert logits[0] != logits[1]


@pytest.mark.parametrize("name", ["sndcgan", "resnet_cifar"])
def test_generator_output_is_tanh_of_a_3x3_convolution(name: str) -> None:
    torch.manual_seed(1)
    g = build("generator", name)
    last = [m for m in g.modules() if isinstance(m, CONVS)][-1]
    assert last.kernel_size == (3, 3) and last.stride == (1, 1) and last.out_channels == 3
    seen: list[Tensor] = []
    hook = last.register_forward_hook(lambda m, args, out: seen.append(out))
    with torch.no_grad():
        x = g(torch.randn(2, 128))
    hook.remove()
    assert torch.allclose(x, torch.tanh(seen[0]), atol=1e-6)


# -- 4. gradients -----------------------------------------------------------------------------------------------
# A bias whose only way to the output is straight into a BatchNorm in training mode gets no gradient: the norm
# subtracts every per-channel constant. The study's layers all have biases, so these are listed and checked to be
# exactly that: shifting them all at once leaves the output unchanged. (A bias that also reaches a zero-padded
# convolution is not absorbed: the padding makes its constant uneven near the border.)

ABSORBED = {
    ("generator", "sndcgan", "batch"): {"body.2.bias", "body.5.bias", "body.8.bias"},
    ("generator", "resnet_cifar", "batch"): {"blocks.0.conv1.bias", "blocks.1.conv1.bias", "blocks.2.conv1.bias",
                                             "blocks.2.conv2.bias", "blocks.2.shortcut.bias"},
    ("discriminator", "sndcgan", "batch"): {f"body.{i}.bias" for i in (2, 5, 8, 11, 14, 17)},
    ("discriminator", "resnet_cifar", "batch"): {f"blocks.{i}.conv1.bias" for i in range(4)},
}
GRADIENT_CASES = [("generator", name, norm) for name in ("sndcgan", "resnet_cifar") for norm in ("batch", "none")] \
    + [("discriminator", name, norm) for name in ("sndcgan", "resnet_cifar") for norm in D_NORMS]


@pytest.mark.parametrize(("kind", "name", "normalization"), GRADIENT_CASES)
def test_gradients_reach_every_parameter(kind: str, name: str, normalization: str) -> None:
    """Training mode; G's output is scored by a fixed random projection, D's logits are summed. Relative to the
    largest gradient entry, every parameter's largest is above 1e-5 (measured: 3.7e-4 and up) except the absorbed
    biases' (measured: 7e-7 at most, rounding error)."""
    torch.manual_seed(2)
    net = build(kind, name, normalization=normalization).train()
    inputs = torch.randn(2, 128) if kind == "generator" else torch.randn(2, 3, 32, 32)
    scores = torch.randn(2, 3, 32, 32) if kind == "generator" else torch.ones(2)
    (net(inputs) * scores).sum().backward()
    absorbed = ABSORBED.get((kind, name, normalization), set())
    params = dict(net.named_parameters())
    assert absorbed <= set(params)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())
    largest = max(p.grad.abs().max().item() for p in params.values())
    for label, p in params.items():
        if label in absorbed:
            assert p.grad.abs().max() <= 1e-5 * largest, f"{label} should be absorbed by a BatchNorm"
        else:
            assert p.grad.abs().max() > 1e-5 * largest, f"no gradient reaches {label}"
    if absorbed:
        with torch.no_grad():
            before = net(inputs)
            for label in absorbed:
                params[label].add_(0.5)
            assert torch.allclose(net(inputs), before, atol=1e-4)


@pytest.mark.parametrize("normalization", D_NORMS)
@pytest.mark.parametrize("name", ["sndcgan", "resnet_cifar"])
def test_r1_double_backward_reaches_every_weight(name: str, normalization: str) -> None:
    """R1 = ‖∇ₓ Σ D(x)‖², differentiated again with respect to D's parameters: every convolution and linear weight
    gets a non-zero, finite gradient (biases and offsets may get none: they only move the ReLUs' kinks)."""
    torch.manual_seed(3)
    d = build("discriminator", name, normalization=normalization)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    weights = [(n, m.weight) for n, m in d.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weights) == (8 if name == "sndcgan" else 13)
    for label, w in weights:
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0, label
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)


@pytest.mark.parametrize("normalization", D_NORMS)
def test_second_derivatives_match_finite_differences(normalization: str) -> None:
    """gradgradcheck in float64 on a narrow discriminator built from the study's blocks (one ResBlock down, one
    without resampling, 3 channels, 4×4 images with 2 channels): the norms' and ReLUs' double backward agrees with
    finite differences."""
    torch.manual_seed(4)
    d = ResNetDiscriminator([(3, "down"), (3, "none")], 0, 4, 2, normalization).double()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(d, (x,), eps=1e-6, atol=1e-5, rtol=1e-3)


# -- 5. layer norm keeps samples apart, batch norm does not ------------------------------------------------------


@pytest.mark.parametrize("name", ["sndcgan", "resnet_cifar"])
def test_layer_norm_keeps_each_logit_to_its_own_sample(name: str) -> None:
    """In training mode: with layer norm (or none) the logit of sample 0 has zero gradient with respect to the other
    samples and does not change when they do; with batch norm it depends on them."""
    torch.manual_seed(5)
    x = torch.randn(2, 3, 32, 32)
    others = torch.randn(2, 3, 32, 32)
    for normalization in D_NORMS:
        d = build("discriminator", name, normalization=normalization).train()
        inputs = x.clone().requires_grad_(True)
        logits = d(inputs)
        (grad,) = torch.autograd.grad(logits[0], inputs)
        with torch.no_grad():
            mixed = d(torch.cat([x, others]))[:2]
        if normalization == "batch":
            assert grad[1:].abs().sum() > 0
            assert (mixed - logits.detach()).abs().max() > 1e-3
        else:
            assert grad[0].abs().sum() > 0 and not grad[1:].any(), normalization
            assert torch.allclose(mixed, logits.detach(), atol=1e-5), normalization


def test_layer_norm_normalises_each_sample_over_all_its_features() -> None:
    """(x − mean) / √(var + 1e-5) over (C, H, W) of each sample, var biased, then times γ[c] plus β[c]."""
    torch.manual_seed(6)
    ln = LayerNorm2d(5)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    x = torch.randn(3, 5, 4, 6) * 3 + 2
    flat = x.reshape(3, -1)
    mean = flat.mean(1).view(3, 1, 1, 1)
    var = ((flat - flat.mean(1, keepdim=True)) ** 2).mean(1).view(3, 1, 1, 1)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * ln.weight.view(1, 5, 1, 1) + ln.bias.view(1, 5, 1, 1)
    assert torch.allclose(ln(x), expected, atol=1e-5)
    assert ln.weight.shape == ln.bias.shape == (5,)


# -- 6. the ResBlock's order of operations ----------------------------------------------------------------------


@pytest.mark.parametrize("resample", ["up", "down", "none"])
def test_resblock_main_path_and_shortcut(resample: str) -> None:
    """Without normalisation: ReLU → [nearest 2×] → conv1 → ReLU → conv2 → [2×2 mean], plus [2×] → shortcut →
    [mean]; resampling written here with repeat_interleave and strided sums."""
    torch.manual_seed(7)
    block = ResBlock(3, 5, resample, "none")
    x = torch.randn(2, 3, 6, 6)

    def up(t: Tensor) -> Tensor:
        return t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) if resample == "up" else t

    def pool(t: Tensor) -> Tensor:
        if resample != "down":
            return t
        return (t[..., ::2, ::2] + t[..., 1::2, ::2] + t[..., ::2, 1::2] + t[..., 1::2, 1::2]) / 4

    def conv3(layer: nn.Conv2d, t: Tensor) -> Tensor:
        return F.conv2d(t, layer.weight, layer.bias, padding=1)

    main = pool(conv3(block.conv2, F.relu(conv3(block.conv1, up(F.relu(x))))))
    with torch.no_grad():
        assert torch.allclose(block(x), main + pool(conv3(block.shortcut, up(x))), atol=1e-5)


# -- 7. validation ----------------------------------------------------------------------------------------------

BAD = [
    ("sndcgan", dict(resolution=36), ["resolution 36", "multiple of 8"]),
    ("resnet_cifar", dict(resolution=64), ["resolution 64", "32×32"]),
    ("resnet19", dict(resolution=32), ["resolution 32", "128×128"]),
]


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize(("name", "params", "words"), BAD)
def test_unsupported_sides_are_refused(kind: str, name: str, params: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        REGISTRY.validate_params(kind, name, params, path=kind)
    (problem,) = info.value.problems
    assert all(word in problem for word in words), problem


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("name", NAMES)
def test_labels_are_refused(kind: str, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        REGISTRY.validate_params(kind, name, {"num_classes": 10}, path=kind)
    (problem,) = info.value.problems
    assert "num_classes = 10" in problem and "unconditional" in problem
    REGISTRY.validate_params(kind, name, {"num_classes": 0, "resolution": SIDE[name]})


def test_normalisation_choices() -> None:
    for name in NAMES:
        for normalization in D_NORMS:
            REGISTRY.validate_params("discriminator", name, {"normalization": normalization})
        REGISTRY.validate_params("generator", name, {"normalization": "none"})
        with pytest.raises(ConfigError, match="normalization"):
            REGISTRY.validate_params("generator", name, {"normalization": "layer"})
        with pytest.raises(ConfigError, match="normalization"):
            REGISTRY.validate_params("discriminator", name, {"normalization": "spectral"})


def test_sndcgan_accepts_any_multiple_of_8() -> None:
    for side in (8, 16, 24, 48, 64, 128):
        REGISTRY.validate_params("generator", "sndcgan", {"resolution": side})


def test_generic_resnets_check_their_side() -> None:
    with pytest.raises(ValueError, match="2 ResBlocks up from 4×4 make 16×16 images, not 32"):
        ResNetGenerator([8, 8, 8], 16, 0, 32, 3, "batch")
    with pytest.raises(ValueError, match="3 ResBlocks down need a side divisible by 8, not 12"):
        ResNetDiscriminator([(8, "down")] * 3, 0, 12, 3, "none")


# -- 8. registration --------------------------------------------------------------------------------------------


def test_plugin_registers_the_six_networks() -> None:
    registry = make_registry(gancore_landscape)
    info = registry.plugins["gancore_landscape"]
    assert (info.status, info.error) == ("ok", "")
    assert sorted(info.components) == sorted(f"{kind}:{name}" for kind in ("generator", "discriminator")
                                             for name in NAMES)
    assert gancore_landscape.GANCORE_API_VERSION == CORE_API_VERSION
    assert registry.get("discriminator", "resnet_cifar").plugin == "gancore_landscape"
