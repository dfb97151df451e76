"""What the networks compute, at small widths on the CPU: shapes and ranges, gradients, conditioning, hierarchical z,
the layers against formulas written out here, initialisation, standing statistics, truncation and R1's double
backward."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gancore.batchnorm import CrossReplicaBatchNorm, cross_replica, stand
from gancore.testing import make_registry
from torch import Tensor, nn

import gancore_biggan
from gancore_biggan.architecture import Block
from gancore_biggan.biggan import DownBlock, UpBlock
from gancore_biggan.deep import DeepDownBlock, DeepUpBlock
from gancore_biggan.layers import ConditionalBatchNorm, SelfAttention

REGISTRY = make_registry(gancore_biggan)
VARIANTS = ["biggan", "biggan_deep"]
SMALL = dict(ch=4, init="ortho", attention=None)
"""Narrow networks (ch 4 is the least BigGAN-deep's bottlenecks allow), no attention, the ImageNet networks'
orthogonal init. With N(0, 0.02) weights at this width PyTorch's default biases dominate: signals shrink layer by
layer (R1's directional derivative was ~1e-15, the effect of a label ~1e-4 on the image), and one 4-channel
bottleneck of BigGAN-deep's D starts with every inner ReLU off at each of 5 seeds tried, so no gradient crosses it."""


def build(kind: str, name: str, **params: Any) -> nn.Module:
    return REGISTRY.create(kind, name, {**SMALL, **params})


def pair(name: str, **params: Any) -> tuple[nn.Module, nn.Module]:
    """G and D of one variant with the same resolution, classes and attention; G-only parameters go to G."""
    common = {k: v for k, v in params.items() if k in ("ch", "resolution", "num_classes", "attention", "init")}
    return build("generator", name, **params), build("discriminator", name, **common)


def open_attention(*networks: nn.Module, gamma: float = 0.5) -> None:
    """Set every attention block's γ away from its initial 0, so that its convolutions take part."""
    for net in networks:
        for module in net.modules():
            if isinstance(module, SelfAttention):
                module.gamma.data.fill_(gamma)


# -- shapes and ranges --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("resolution", [32, 64, 128, 256, 512])
def test_every_resolution_gives_images_in_range_and_one_logit_per_image(name: str, resolution: int) -> None:
    torch.manual_seed(resolution)
    g, d = pair(name, resolution=resolution, num_classes=3, shared_dim=8, attention=8)
    z, c = g.sample_z(2), torch.tensor([0, 2])
    with torch.no_grad():
        x = g(z, c)
        logits = d(x, c)
    assert x.shape == (2, 3, resolution, resolution) and x.dtype == torch.float32
    assert x.abs().max() <= 1 and torch.isfinite(x).all()
    assert (x[0] - x[1]).abs().max() > 1e-4, "different latents give different images"
    assert logits.shape == (2,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_unconditional_networks_have_no_class_parts(name: str) -> None:
    g, d = pair(name, resolution=32, num_classes=0, shared_dim=0)
    assert g.shared is None and d.head.embed is None
    assert not any(isinstance(m, nn.Embedding) for m in [*g.modules(), *d.modules()])
    with torch.no_grad():
        assert d(g(g.sample_z(2))).shape == (2,)


@pytest.mark.parametrize("name", VARIANTS)
def test_conditional_networks_refuse_missing_labels(name: str) -> None:
    g, d = pair(name, resolution=32, num_classes=3, shared_dim=8)
    with pytest.raises(ValueError, match="conditional on 3 classes"):
        g(g.sample_z(2))
    with pytest.raises(ValueError, match="conditional on 3 classes"):
        d(torch.zeros(2, 3, 32, 32))


# -- gradients ----------------------------------------------------------------------------------------------------

GRADIENT_CASES = {
    "shared_hierarchical": ("biggan", dict(shared_dim=8, hierarchical=True)),
    "per_class_flat": ("biggan", dict(shared_dim=0, hierarchical=False)),
    "deep_shared": ("biggan_deep", dict(shared_dim=8)),
    "deep_per_class": ("biggan_deep", dict(shared_dim=0)),
}


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_gradients_reach_every_parameter(case: str) -> None:
    """G in eval mode: in training mode BatchNorm removes a per-channel constant exactly, so the biases of the layers
    that feed only BatchNorms (and, through the linear skips, the output BatchNorm) get no gradient, as in the
    authors' networks. Attention's γ is opened, else its convolutions are multiplied by 0."""
    name, extra = GRADIENT_CASES[case]
    torch.manual_seed(0)
    g, d = pair(name, resolution=32, num_classes=3, attention=16, **extra)
    open_attention(g, d)
    g.eval()
    c = torch.tensor([0, 1, 2, 1])  # every class, so every row of every embedding is used
    d(g(g.sample_z(4), c), c).square().sum().backward()
    for net in (g, d):
        missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"no gradient reaches {missing}"


def test_in_training_mode_every_weight_still_gets_a_gradient() -> None:
    torch.manual_seed(0)
    g, d = pair("biggan", resolution=32, num_classes=3, shared_dim=8, attention=16)
    open_attention(g, d)
    c = torch.tensor([0, 1, 2, 1])
    d(g(g.sample_z(4), c), c).square().sum().backward()
    weights = [(n, p) for n, p in [*g.named_parameters(), *d.named_parameters()] if not n.endswith("bias")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in weights)


# -- conditioning -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(GRADIENT_CASES))
def test_generator_output_depends_on_the_label(case: str) -> None:
    """One latent, three labels: the images differ by 0.29 to 2 in max-abs over 5 seeds tried, against 1.3 to 2
    between different latents."""
    name, extra = GRADIENT_CASES[case]
    torch.manual_seed(1)
    g = build("generator", name, resolution=32, num_classes=3, **extra).eval()
    z = g.sample_z(1).repeat(3, 1)
    with torch.no_grad():
        x = g(z, torch.tensor([0, 1, 2]))
    assert (x[0] - x[1]).abs().max() > 0.05 and (x[1] - x[2]).abs().max() > 0.05


@pytest.mark.parametrize("name", VARIANTS)
def test_discriminator_adds_the_projection_of_the_class_embedding(name: str) -> None:
    """D(x, c) = w·h + b + ⟨E[c], h⟩ with h the summed ReLU features that the head receives."""
    torch.manual_seed(2)
    d = build("discriminator", name, resolution=32, num_classes=3, attention=16)
    open_attention(d)
    seen: list[Tensor] = []
    d.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        by_class = torch.stack([d(x, torch.full((2,), k)) for k in range(3)])  # (class, sample)
    h = seen[0]
    assert torch.equal(h, seen[1]) and (h >= 0).all(), "the features do not depend on the label; ReLU before pooling"
    w, b, embed = d.head.linear.weight[0], d.head.linear.bias[0], d.head.embed.weight
    expected = h @ w + b + embed.detach() @ h.T  # (class, sample)
    torch.testing.assert_close(by_class, expected.detach())  # float32's default tolerances
    assert (by_class[0] - by_class[1]).abs().min() > 1e-3 * by_class.abs().max(), "the label moves every logit"


# -- hierarchical and concatenated z ------------------------------------------------------------------------------


def conditioning_inputs(g: nn.Module, z: Tensor, c: Tensor | None) -> list[Tensor | None]:
    """The conditioning vector y each generator block receives (its second argument)."""
    seen: list[Tensor | None] = []
    hooks = [block.register_forward_hook(lambda module, args, out: seen.append(args[1])) for block in g.blocks]
    with torch.no_grad():
        g(z, c)
    for hook in hooks:
        hook.remove()
    return seen


def test_hierarchical_z_gives_each_block_its_own_chunk_with_the_shared_embedding() -> None:
    g = build("generator", "biggan", resolution=64, num_classes=3, shared_dim=8)
    z, c = g.sample_z(2), torch.tensor([2, 0])
    chunk = g.z_dim // 5  # 4 blocks and the input layer
    expected = [torch.cat([g.shared(c), z[:, chunk * (k + 1):chunk * (k + 2)]], dim=1) for k in range(4)]
    for y, want in zip(conditioning_inputs(g, z, c), expected, strict=True):
        torch.testing.assert_close(y, want.detach())


def test_without_hierarchical_z_every_block_reads_the_shared_embedding() -> None:
    g = build("generator", "biggan", resolution=32, num_classes=3, shared_dim=8, hierarchical=False)
    z, c = g.sample_z(2), torch.tensor([2, 0])
    assert g.z_dim == 128 and g.linear.in_features == 128
    for y in conditioning_inputs(g, z, c):
        torch.testing.assert_close(y, g.shared(c).detach())


def test_unconditional_hierarchical_blocks_read_their_chunk_alone() -> None:
    g = build("generator", "biggan", resolution=32, num_classes=0, shared_dim=0)
    z = g.sample_z(2)
    for k, y in enumerate(conditioning_inputs(g, z, None)):
        torch.testing.assert_close(y, z[:, 20 * (k + 1):20 * (k + 2)])


def test_deep_blocks_read_the_whole_z_with_the_shared_embedding() -> None:
    g = build("generator", "biggan_deep", resolution=32, num_classes=3, shared_dim=8, z_dim=16)
    z, c = g.sample_z(2), torch.tensor([1, 2])
    ys = conditioning_inputs(g, z, c)
    assert len(ys) == 6  # two blocks per resolution
    for y in ys:
        torch.testing.assert_close(y, torch.cat([g.shared(c), z], dim=1).detach())


def test_changing_one_z_chunk_changes_the_image_from_its_block_on() -> None:
    """In eval mode (no batch statistics) chunk 0 feeds the input layer and chunk k the k-th block: the blocks before
    it are untouched, the image changes."""
    torch.manual_seed(3)
    g = build("generator", "biggan", resolution=32, num_classes=3, shared_dim=8).eval()
    outputs: list[Tensor] = []
    for block in g.blocks:
        block.register_forward_hook(lambda module, args, out: outputs.append(out))
    z, c = g.sample_z(1), torch.tensor([1])
    with torch.no_grad():
        base = g(z, c)
        base_blocks = outputs[:]
        for k in range(4):
            outputs.clear()
            changed = z.clone()
            changed[:, 20 * k:20 * (k + 1)] = g.sample_z(1)[:, :20]
            x = g(changed, c)
            assert (x - base).abs().max() > 1e-5, f"chunk {k} does not reach the image"
            first = max(k - 1, 0)  # chunk k ≥ 1 conditions block k - 1; chunk 0 feeds the input of block 0
            assert all(torch.equal(a, b) for a, b in zip(outputs[:first], base_blocks[:first]))
            assert not torch.equal(outputs[first], base_blocks[first])


# -- layers against formulas --------------------------------------------------------------------------------------


def test_conditional_batchnorm_is_normalise_then_one_plus_gain_and_bias() -> None:
    torch.manual_seed(4)
    cbn = ConditionalBatchNorm(6, cond_dim=5, num_classes=3, eps=1e-4)
    for layer in (cbn.gain, cbn.shift, cbn.gain_embed, cbn.shift_embed):
        nn.init.normal_(layer.weight)
    x, y, c = torch.randn(4, 6, 3, 3) * 2 + 1, torch.randn(4, 5), torch.tensor([0, 2, 1, 2])
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    gain = 1 + y @ cbn.gain.weight.T + cbn.gain_embed.weight[c]
    bias = y @ cbn.shift.weight.T + cbn.shift_embed.weight[c]
    expected = (x - mean) / torch.sqrt(var + 1e-4) * gain[:, :, None, None] + bias[:, :, None, None]
    torch.testing.assert_close(cbn(x, y, c), expected.detach())
    assert not cbn.norm.affine and cbn.norm.eps == 1e-4
    assert cbn.gain.bias is None and cbn.shift.bias is None  # as the authors' (bias-free) linear maps


def conv(layer: nn.Conv2d, x: Tensor) -> Tensor:
    return F.conv2d(x, layer.weight, layer.bias, padding=layer.padding)


def nearest_2x(x: Tensor) -> Tensor:
    return x.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)


def mean_pool_2x(x: Tensor) -> Tensor:
    n, c, height, width = x.shape
    return x.reshape(n, c, height // 2, 2, width // 2, 2).mean(dim=(3, 5))


def conditional_bn(bn: ConditionalBatchNorm, x: Tensor, y: Tensor, c: Tensor) -> Tensor:
    """BatchNorm with batch statistics, times 1 + W_gain·y + E_gain[c], plus W_shift·y + E_shift[c]."""
    normalised = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
        x.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + bn.norm.eps)
    gain = 1 + y @ bn.gain.weight.T + bn.gain_embed.weight[c]
    shift = y @ bn.shift.weight.T + bn.shift_embed.weight[c]
    return normalised * gain[:, :, None, None] + shift[:, :, None, None]


def test_up_block_is_cbn_relu_upsample_conv_cbn_relu_conv_plus_a_learned_skip() -> None:
    """Written in the authors' order (the skip upsampled, then its 1×1 convolution), which the block reorders."""
    torch.manual_seed(14)
    block = UpBlock(Block(8, 4, True, 8), cond_dim=5, num_classes=3, eps=1e-5)
    x, y, c = torch.randn(3, 8, 4, 4), torch.randn(3, 5), torch.tensor([2, 0, 1])
    h = conv(block.conv1, nearest_2x(F.relu(conditional_bn(block.bn1, x, y, c))))
    h = conv(block.conv2, F.relu(conditional_bn(block.bn2, h, y, c)))
    expected = h + conv(block.shortcut, nearest_2x(x))
    assert tuple(block.conv1.weight.shape) == (4, 8, 3, 3) and tuple(block.shortcut.weight.shape) == (4, 8, 1, 1)
    torch.testing.assert_close(block(x, y, c), expected.detach())


@pytest.mark.parametrize(("preactivation", "downsample", "out_channels"),
                         [(False, True, 8), (True, True, 8), (True, True, 4), (True, False, 8), (True, False, 4)])
def test_down_block_is_relu_conv_relu_conv_pool_plus_a_skip(preactivation: bool, downsample: bool,
                                                            out_channels: int) -> None:
    """Written in the authors' order for pre-activated blocks (the skip's 1×1 convolution, then the pool)."""
    torch.manual_seed(15)
    block = DownBlock(Block(4, out_channels, downsample, 4), preactivation)
    x = torch.randn(2, 4, 8, 8)
    h = F.relu(x) if preactivation else x
    h = conv(block.conv2, F.relu(conv(block.conv1, h)))
    learnable = out_channels != 4 or downsample
    assert (block.shortcut is not None) == learnable
    skip = conv(block.shortcut, x) if block.shortcut is not None else x
    if downsample:
        h, skip = mean_pool_2x(h), mean_pool_2x(skip)
    torch.testing.assert_close(block(x), (h + skip).detach())


def test_deep_up_block_is_a_bottleneck_that_drops_channels_in_its_skip() -> None:
    torch.manual_seed(16)
    block = DeepUpBlock(16, 8, True, cond_dim=5, num_classes=3, eps=1e-5)
    x, y, c = torch.randn(3, 16, 4, 4), torch.randn(3, 5), torch.tensor([1, 1, 0])
    assert [tuple(m.weight.shape) for m in (block.conv1, block.conv2, block.conv3, block.conv4)] == \
        [(4, 16, 1, 1), (4, 4, 3, 3), (4, 4, 3, 3), (8, 4, 1, 1)]  # inner width = input ÷ 4
    h = F.relu(conditional_bn(block.bn2, conv(block.conv1, F.relu(conditional_bn(block.bn1, x, y, c))), y, c))
    h = conv(block.conv2, nearest_2x(h))
    h = conv(block.conv3, F.relu(conditional_bn(block.bn3, h, y, c)))
    h = conv(block.conv4, F.relu(conditional_bn(block.bn4, h, y, c)))
    expected = h + nearest_2x(x[:, :8])
    torch.testing.assert_close(block(x, y, c), expected.detach())


def test_deep_down_block_is_a_bottleneck_whose_skip_concatenates_new_channels() -> None:
    torch.manual_seed(17)
    block = DeepDownBlock(8, 16, True)
    x = torch.randn(2, 8, 8, 8)
    assert [tuple(m.weight.shape) for m in (block.conv1, block.conv2, block.conv3, block.conv4, block.shortcut)] == \
        [(4, 8, 1, 1), (4, 4, 3, 3), (4, 4, 3, 3), (16, 4, 1, 1), (8, 8, 1, 1)]  # inner width = output ÷ 4
    h = conv(block.conv3, F.relu(conv(block.conv2, F.relu(conv(block.conv1, F.relu(x))))))
    h = conv(block.conv4, mean_pool_2x(F.relu(h)))
    skip = mean_pool_2x(x)
    expected = h + torch.cat([skip, conv(block.shortcut, skip)], dim=1)
    torch.testing.assert_close(block(x), expected.detach())
    assert DeepDownBlock(16, 16, False).shortcut is None


def test_self_attention_starts_as_the_identity() -> None:
    torch.manual_seed(5)
    block = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert block.gamma.item() == 0 and block.gamma.requires_grad
    assert torch.equal(block(x), x)
    g = build("generator", "biggan", resolution=32, num_classes=0, shared_dim=0, attention=16).eval()
    z = g.sample_z(2)
    with torch.no_grad():
        with_attention = g(z)
        g.attention_after = None
        assert torch.equal(g(z), with_attention)


def test_self_attention_matches_the_non_local_formula() -> None:
    torch.manual_seed(6)
    block = SelfAttention(16)
    block.gamma.data.fill_(0.7)
    x = torch.randn(2, 16, 6, 8)
    assert [tuple(m.weight.shape[:2]) for m in (block.theta, block.phi, block.g, block.o)] == \
        [(2, 16), (2, 16), (8, 16), (16, 8)]
    assert all(m.bias is None for m in (block.theta, block.phi, block.g, block.o))

    def project(conv: nn.Conv2d, t: Tensor) -> Tensor:
        return torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], t)

    queries = project(block.theta, x).flatten(2)  # (n, 2, 48)
    keys = F.max_pool2d(project(block.phi, x), 2).flatten(2)  # (n, 2, 12)
    values = F.max_pool2d(project(block.g, x), 2).flatten(2)  # (n, 8, 12)
    weights = torch.softmax(torch.einsum("nci,ncj->nij", queries, keys), dim=2)  # (n, 48, 12)
    attended = torch.einsum("ncj,nij->nci", values, weights).reshape(2, 8, 6, 8)
    expected = x + 0.7 * project(block.o, attended)
    torch.testing.assert_close(block(x), expected.detach())


@pytest.mark.parametrize("init", ["ortho", "normal", "xavier"])
def test_initialisation_of_every_convolution_linear_and_embedding(init: str) -> None:
    torch.manual_seed(7)
    g, d = pair("biggan", resolution=32, num_classes=3, shared_dim=8, attention=16, init=init, ch=8)
    layers = [m for net in (g, d) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert any(isinstance(m, nn.Embedding) for m in layers)
    for layer in layers:
        w = layer.weight.detach().flatten(1)
        if init == "ortho":  # orthonormal rows, or columns when there are more rows than columns
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            torch.testing.assert_close(gram, torch.eye(len(gram)), atol=1e-5, rtol=0)
        elif w.numel() >= 1000:  # enough entries to estimate the standard deviation within a few percent
            shape = layer.weight.shape
            receptive = math.prod(shape[2:])
            fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            std = 0.02 if init == "normal" else math.sqrt(2 / (fan_in + fan_out))  # U(±√(6/(in+out))) for xavier
            assert abs(w.std().item() / std - 1) < 0.1, (init, tuple(layer.weight.shape))


# -- standing statistics, cross-replica BatchNorm and truncation ---------------------------------------------------


def test_standing_statistics_make_a_sample_independent_of_its_batch() -> None:
    torch.manual_seed(8)
    g = build("generator", "biggan", resolution=32, num_classes=3, shared_dim=8, attention=16)
    open_attention(g)
    z0, c0 = g.sample_z(1), torch.tensor([1])
    batch_a = (torch.cat([z0, g.sample_z(5)]), torch.cat([c0, torch.tensor([0, 2, 2, 1, 0])]))
    batch_b = (torch.cat([z0, g.sample_z(3) * 2]), torch.cat([c0, torch.tensor([2, 2, 0])]))
    with torch.no_grad():
        train_a, train_b = g(*batch_a)[0], g(*batch_b)[0]
        assert (train_a - train_b).abs().max() > 1e-3, "in training mode BatchNorm mixes the batch"
        stand(g, passes=4, batch_size=8, seed=0)
        g.eval()
        eval_a, eval_b = g(*batch_a)[0], g(*batch_b)[0]
    torch.testing.assert_close(eval_a, eval_b)
    assert (eval_a - train_a).abs().max() > 1e-3
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 * len(g.blocks) + 1  # two conditional BNs per block and the output BN
    assert all(int(m.num_batches_tracked) == 4 for m in norms)


@pytest.mark.parametrize("name", VARIANTS)
def test_cross_replica_swap_covers_the_conditional_batchnorms(name: str) -> None:
    torch.manual_seed(9)
    g = build("generator", name, resolution=32, num_classes=3, shared_dim=8)
    z, c = g.sample_z(4), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        before = g(z, c)
        swapped = cross_replica(g)
        after = swapped(z, c)
    norms = [m for m in swapped.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, CrossReplicaBatchNorm) for m in norms)
    torch.testing.assert_close(after, before)  # one process: the same batch statistics


def truncated_normal_std(t: float) -> float:
    """Standard deviation of N(0, 1) restricted to [-t, t]: var = 1 − 2tφ(t) / (2Φ(t) − 1)."""
    density = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * t * density / math.erf(t / math.sqrt(2)))


@pytest.mark.parametrize("truncation", [0.5, 2.0])
def test_truncated_latents_have_the_truncated_normals_statistics(truncation: float) -> None:
    g = build("generator", "biggan", resolution=128, num_classes=3, shared_dim=8, attention=None)
    z = g.sample_z(2000, generator=torch.Generator().manual_seed(10), truncation=truncation)
    assert z.shape == (2000, 120)
    assert z.abs().max() <= truncation
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() / truncated_normal_std(truncation) - 1) < 0.01


@pytest.mark.parametrize("name", VARIANTS)
def test_truncation_lowers_the_variety_of_samples_with_standing_statistics(name: str) -> None:
    """Sampled as BigGAN evaluates (eval mode, standing statistics from untruncated z), a smaller threshold gives
    images that vary less across latents, per pixel."""
    torch.manual_seed(11)
    g = build("generator", name, resolution=32, num_classes=3, shared_dim=8)
    stand(g, passes=4, batch_size=16, seed=0)
    g.eval()
    c = torch.zeros(32, dtype=torch.long)
    spread = {}
    with torch.no_grad():
        for t in (0.5, 2.0):
            z = g.sample_z(32, generator=torch.Generator().manual_seed(12), truncation=t)
            spread[t] = g(z, c).var(dim=0).mean().item()
    assert spread[0.5] < 0.5 * spread[2.0]


# -- R1 needs D twice differentiable -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_discriminator_is_twice_differentiable_in_its_input(name: str) -> None:
    """The gradient of R1 = ‖∇ₓD(x)‖² w.r.t. x (attention makes D curved in x) agrees with central differences in
    float64 along a random direction (to 1e-11 to 4e-7 relative over 6 seeds tried, for directional derivatives of
    4e-4 to 3.5; ReLU kinks ±1e-6 away are rare), and R1's backward reaches every weight of D."""
    torch.manual_seed(13)
    d = build("discriminator", name, resolution=32, num_classes=3, attention=16).double()
    open_attention(d, gamma=1.0)
    x, c = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True), torch.tensor([0, 2])

    def r1(inputs: Tensor) -> Tensor:
        (grad,) = torch.autograd.grad(d(inputs, c).sum(), inputs, create_graph=True)
        return grad.square().sum()

    penalty = r1(x)
    (analytic,) = torch.autograd.grad(penalty, x, retain_graph=True)
    v, eps = torch.randn_like(x), 1e-6
    numeric = (r1((x + eps * v).detach().requires_grad_()) - r1((x - eps * v).detach().requires_grad_())) / (2 * eps)
    assert numeric.abs() > 1e-5, "R1 must vary along v for the comparison to mean anything"
    torch.testing.assert_close((analytic * v).sum(), numeric.detach(), rtol=1e-5, atol=0)
    penalty.backward()
    weights = [n for n, p in d.named_parameters() if p.dim() >= 2]
    assert all(d.get_parameter(n).grad is not None and d.get_parameter(n).grad.abs().sum() > 0 for n in weights)
