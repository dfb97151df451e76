"""The networks' sizes and layouts against the paper and the authors' code, the registry, and parameter validation.

The paper's configurations are built on the ``meta`` device: no memory, no initialisation cost.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from gancore import CORE_API_VERSION, ConfigError, Discriminator, Generator
from gancore.testing import make_registry
from torch import nn

import gancore_biggan
from gancore_biggan.biggan import BigGANDiscriminator, BigGANGenerator, DownBlock, UpBlock
from gancore_biggan.deep import BigGANDeepGenerator

REGISTRY = make_registry(gancore_biggan)

IMAGENET128 = dict(ch=96, resolution=128, num_classes=1000, attention=64, init="ortho")
CIFAR10 = dict(ch=64, resolution=32, num_classes=10, attention=None, init="normal")

PAPER = {
    # name: (network, G params, D params, the authors' PyTorch counts (G, D), the paper's counts in millions)
    "biggan_128": ("biggan", dict(IMAGENET128, z_dim=120, shared_dim=128, hierarchical=True), IMAGENET128,
                   (70_433_988, 87_982_370), (70.4, 88.0)),
    "biggan_deep_128": ("biggan_deep", dict(IMAGENET128, ch=128, z_dim=128, shared_dim=128), dict(IMAGENET128, ch=128),
                        (50_244_484, 34_590_210), (50.4, 34.6)),
    "biggan_cifar10": ("biggan", dict(CIFAR10, z_dim=128, shared_dim=0, hierarchical=False), CIFAR10,
                       (4_304_387, 4_207_361), (4.30, 4.21)),
}
"""The authors' counts are 70.434 / 87.982 M, 50.244 / 34.590 M and 4.304 / 4.207 M (rounded in the reference)."""


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def on_meta(kind: str, name: str, **params: Any) -> nn.Module:
    with torch.device("meta"):
        return REGISTRY.create(kind, name, params)


@pytest.mark.parametrize("config", list(PAPER))
def test_parameter_counts_match_the_authors_code_and_the_paper(config: str) -> None:
    name, g_params, d_params, exact, paper = PAPER[config]
    g, d = on_meta("generator", name, **g_params), on_meta("discriminator", name, **d_params)
    counts = (count(g), count(d))
    print(f"{config}: G {counts[0]:,} D {counts[1]:,}")
    assert counts == exact
    for measured, millions in zip(counts, paper):
        assert abs(measured / 1e6 - millions) <= 0.01 * millions


def test_defaults_are_the_papers_imagenet_128_networks() -> None:
    assert (count(on_meta("generator", "biggan")), count(on_meta("discriminator", "biggan"))) == PAPER["biggan_128"][3]
    assert (count(on_meta("generator", "biggan_deep")),
            count(on_meta("discriminator", "biggan_deep"))) == PAPER["biggan_deep_128"][3]


@pytest.mark.parametrize("name", ["biggan", "biggan_deep"])
def test_full_size_networks_give_the_contracts_shapes(name: str) -> None:
    """A forward pass on the meta device checks every layer's shapes at the paper's widths, without computing."""
    g, d = on_meta("generator", name), on_meta("discriminator", name)
    with torch.device("meta"):
        z, c = torch.empty(2, g.z_dim), torch.zeros(2, dtype=torch.long)
        x = g(z, c)
        assert tuple(x.shape) == (2, 3, 128, 128)
        assert tuple(d(x, c).shape) == (2,)


@pytest.mark.parametrize(("resolution", "z_dim"), [(32, 80), (64, 100), (128, 120), (256, 140), (512, 160)])
def test_hierarchical_z_has_one_chunk_of_20_per_block_and_one_for_the_input(resolution: int, z_dim: int) -> None:
    g = on_meta("generator", "biggan", ch=4, resolution=resolution, attention=None)
    assert g.z_dim == z_dim  # the reference: 120 at 128², 140 at 256², 160 at 512²
    assert g.linear.in_features == 20
    assert all(block.bn1.gain.in_features == 128 + 20 for block in g.blocks)  # [shared embedding, chunk]


def test_flat_z_feeds_only_the_input_layer_and_the_deep_z_every_layer() -> None:
    flat = on_meta("generator", "biggan", **PAPER["biggan_cifar10"][1])
    assert (flat.z_dim, flat.linear.in_features) == (128, 128)
    assert all(block.bn1.gain is None and block.bn1.gain_embed.num_embeddings == 10 for block in flat.blocks)
    deep = on_meta("generator", "biggan_deep")
    assert (deep.z_dim, deep.linear.in_features) == (128, 256)
    assert all(block.bn1.gain.in_features == 256 for block in deep.blocks)


# The reference's channel multipliers (input → output per block), transcribed independently of the plugin's tables.
G_LAYOUT = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
D_LAYOUT = {  # the image's 3 channels are written as 0 here
    32: ([0, 4, 4, 4], [4, 4, 4, 4], [True, True, False, False]),
    64: ([0, 1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False]),
    128: ([0, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False]),
    256: ([0, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False]),
}


@pytest.mark.parametrize("resolution", list(G_LAYOUT))
def test_generator_blocks_follow_the_reference(resolution: int) -> None:
    ch = 3
    g = on_meta("generator", "biggan", ch=ch, resolution=resolution, attention=None)
    ins, outs = G_LAYOUT[resolution]
    assert g.linear.out_features == ins[0] * ch * 4 * 4
    assert [tuple(b.conv1.weight.shape) for b in g.blocks] == [(o * ch, i * ch, 3, 3) for i, o in zip(ins, outs)]
    assert all(isinstance(b, UpBlock) and b.shortcut.kernel_size == (1, 1) for b in g.blocks)
    assert tuple(g.output[2].weight.shape) == (3, outs[-1] * ch, 3, 3)


@pytest.mark.parametrize("resolution", list(D_LAYOUT))
def test_discriminator_blocks_follow_the_reference(resolution: int) -> None:
    ch = 3
    d = on_meta("discriminator", "biggan", ch=ch, resolution=resolution, attention=None)
    ins, outs, down = D_LAYOUT[resolution]
    ins = [i * ch or 3 for i in ins]
    outs = [o * ch for o in outs]
    blocks = list(d.blocks)
    assert all(isinstance(b, DownBlock) for b in blocks)
    assert [tuple(b.conv1.weight.shape) for b in blocks] == [(o, i, 3, 3) for i, o in zip(ins, outs)]
    assert [b.downsample for b in blocks] == down
    assert [b.preactivation for b in blocks] == [False] + [True] * (len(blocks) - 1)
    assert [b.shortcut is not None for b in blocks] == [i != o or dn for i, o, dn in zip(ins, outs, down)]


def test_deep_networks_have_two_blocks_per_resolution() -> None:
    """G: the first block of each resolution keeps its width, the second upsamples and narrows; D: the first
    downsamples and widens, the second keeps both. Multipliers at 128² from G's list and D's (BigGAN's without the
    first block)."""
    ch = 4
    g = on_meta("generator", "biggan_deep", ch=ch)
    ins, outs = G_LAYOUT[128]
    expected_g = [pair for i, o in zip(ins, outs) for pair in ((i, i, False), (i, o, True))]
    assert [(b.conv1.in_channels // ch, b.conv4.out_channels // ch, b.resample) for b in g.blocks] == expected_g
    d = on_meta("discriminator", "biggan_deep", ch=ch)
    d_outs = D_LAYOUT[128][1][1:]
    d_ins = [1, *d_outs[:-1]]
    expected_d = [pair for i, o in zip(d_ins, d_outs) for pair in ((i, o, True), (o, o, False))]
    assert [(b.conv1.in_channels // ch, b.conv4.out_channels // ch, b.resample) for b in d.blocks] == expected_d
    assert tuple(d.stem.weight.shape) == (ch, 3, 3, 3)


def test_the_shared_embedding_is_named_shared_for_the_orthogonal_regularizers_exclude() -> None:
    g = on_meta("generator", "biggan")
    assert [n for n, _ in g.named_parameters() if n.startswith("shared.")] == ["shared.weight"]
    assert tuple(g.shared.weight.shape) == (1000, 128)
    deep = on_meta("generator", "biggan_deep")
    assert [n for n, _ in deep.named_parameters() if n.startswith("shared.")] == ["shared.weight"]


def test_plugin_registers_four_networks_with_the_core_api_version() -> None:
    assert gancore_biggan.GANCORE_API_VERSION == CORE_API_VERSION
    for kind, interface in (("generator", Generator), ("discriminator", Discriminator)):
        for name in ("biggan", "biggan_deep"):
            spec = REGISTRY.get(kind, name)
            assert spec.plugin == "gancore_biggan"
            assert isinstance(on_meta(kind, name), interface)


def test_generators_ask_for_cross_replica_batchnorm_and_take_standing_stats() -> None:
    for name in ("biggan", "biggan_deep"):
        g = on_meta("generator", name, standing_stats=100)
        assert g.cross_replica_batchnorm is True
        assert g.standing_statistics == 100
        assert on_meta("generator", name).standing_statistics == 0
        assert on_meta("discriminator", name).cross_replica_batchnorm is False


BAD = [
    ("generator", "biggan", dict(resolution=48), "resolution = 48 is not supported"),
    ("discriminator", "biggan_deep", dict(resolution=1024), "resolution = 1024 is not supported"),
    ("generator", "biggan", dict(z_dim=100), "z_dim = 100 does not split into 6 equal chunks"),
    ("generator", "biggan", dict(num_classes=0), "shared_dim = 128 but num_classes = 0"),
    ("generator", "biggan_deep", dict(num_classes=0), "shared_dim = 128 but num_classes = 0"),
    ("generator", "biggan", dict(attention=4), "attention = 4: the generator has no block at 4×4"),
    ("discriminator", "biggan", dict(attention=128), "attention = 128: the discriminator has no block at 128×128"),
    ("discriminator", "biggan", dict(resolution=32, ch=4, attention=32), "no block at 32×32; its blocks output 8, 16"),
    ("generator", "biggan", dict(ch=4, attention=128), "blocks there have 4 channels, fewer than the 8"),
    ("generator", "biggan_deep", dict(ch=1), "narrowest block has 2 input channels"),  # 2ch at 128²
    ("discriminator", "biggan_deep", dict(ch=1, resolution=64), "narrowest block has 2 output channels"),
]


@pytest.mark.parametrize(("kind", "name", "params", "message"), BAD)
def test_bad_combinations_are_reported_clearly(kind: str, name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        REGISTRY.validate_params(kind, name, params)


def test_direct_construction_checks_the_same_combinations() -> None:
    with pytest.raises(ValueError, match="z_dim = 100 does not split"):
        BigGANGenerator(z_dim=100)
    with pytest.raises(ValueError, match="no block at 128×128"):
        BigGANDiscriminator(attention=128)
    with pytest.raises(ValueError, match="ch is too small"):
        BigGANDeepGenerator(ch=1)


def test_parameters_outside_their_types_are_refused() -> None:
    with pytest.raises(ConfigError, match="init"):
        REGISTRY.validate_params("generator", "biggan", {"init": "kaiming"})
    with pytest.raises(ConfigError, match="hierarchical"):
        REGISTRY.validate_params("generator", "biggan_deep", {"hierarchical": True})  # deep feeds all of z
    with pytest.raises(ConfigError, match="standing_stats"):
        REGISTRY.validate_params("generator", "biggan", {"standing_stats": -1})
