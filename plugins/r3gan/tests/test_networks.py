"""R3GAN's Config E networks: sizes against the paper, shapes, initialisation, gradients, conditioning, bf16 and
validation.

Everything runs at tiny widths on the CPU; the paper's configurations are only built on the ``meta`` device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from gancore import CORE_API_VERSION, ConfigError, Discriminator, Generator, Registry
from gancore.testing import make_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import gancore_r3gan
from gancore_r3gan.layers import LEAKY_GAIN, Conv, Resample, ResidualBlock, msr_init_

MakeRegistry = Callable[..., Registry]

# hypothesis cannot use function-scoped fixtures: its tests build through one module-wide registry of the plugin
REGISTRY = make_registry(gancore_r3gan)
# derandomized: the statistical assertions below (std of random weights) then cannot flake between runs
FEW = settings(max_examples=12, deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])

ACTIVATION_GAIN = math.sqrt(2 / (1 + 0.2**2))  # the paper's gain, written independently of LEAKY_GAIN


def build(kind: str, **params: Any) -> nn.Module:
    return REGISTRY.create(kind, "r3gan", params)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def stage_params(resolution: int, widths: list[int], **extra: Any) -> dict[str, Any]:
    """Small networks for ``resolution``: ``widths`` truncated to one per stage, cardinality 2, one block each."""
    n = round(math.log2(resolution)) - 1
    return dict(widths=widths[:n], cardinalities=[2] * n, blocks=[1] * n, resolution=resolution, **extra)


def blocks_of(*modules: nn.Module) -> list[ResidualBlock]:
    return [m for module in modules for m in module.modules() if isinstance(m, ResidualBlock)]


def perturb_blocks(*modules: nn.Module) -> None:
    """Give every block's zero-initialised last 1×1 conv weights like its other convs (as training would)."""
    for block in blocks_of(*modules):
        msr_init_(block.project.weight, LEAKY_GAIN * len(blocks_of(*modules)) ** -0.25)


# -- 1. the paper's configurations (Table 9), on the meta device -------------------------------------------------

PAPER_CONFIGS = {
    # name: (parameters shared by G and D, exact G and D counts, the paper's G and D in millions)
    "cifar10": (dict(widths=[768] * 4, cardinalities=[96] * 4, blocks=[2] * 4, resolution=32, num_classes=10),
                (20_781_952, 21_280_512), (20.78, 21.28)),
    "stackedmnist": (dict(widths=[768] * 4, cardinalities=[96] * 4, blocks=[2] * 4, resolution=32),
                     (20_732_160, 20_683_776), (20.73, 20.68)),
    "ffhq64": (dict(widths=[768] * 4 + [384], cardinalities=[96] * 4 + [48], blocks=[2] * 5, resolution=64),
               (22_429_824, 22_381_440), (22.43, 22.38)),
    "ffhq256": (dict(widths=[768] * 4 + [384, 192, 96], cardinalities=[96] * 4 + [48, 24, 12], blocks=[2] * 7,
                     resolution=256),
                (23_057_952, 23_009_568), (23.06, 23.01)),
    "imagenet32": (dict(widths=[1536] * 4, cardinalities=[96] * 4, blocks=[2] * 4, resolution=32, num_classes=1000),
                   (82_914_304, 86_548_992), (82.91, 86.55)),
    "imagenet64": (dict(widths=[1536] * 5, cardinalities=[96] * 5, blocks=[2] * 5, resolution=64, num_classes=1000),
                   (103_570_432, 107_205_120), (103.57, 107.21)),
}


@pytest.mark.parametrize("name", list(PAPER_CONFIGS))
def test_paper_configurations_have_the_papers_parameter_counts(gancore_registry: MakeRegistry, name: str) -> None:
    params, exact, paper = PAPER_CONFIGS[name]
    registry = gancore_registry(gancore_r3gan)
    with torch.device("meta"):
        g = registry.create("generator", "r3gan", params)
        d = registry.create("discriminator", "r3gan", params)
    assert all(p.is_meta for p in [*g.parameters(), *d.parameters()]), "built without allocating memory"
    assert (count(g), count(d)) == exact
    for measured, rounded in zip((count(g), count(d)), paper):
        assert abs(measured / 1e6 - rounded) <= 0.005 * rounded


def test_defaults_are_the_unconditional_cifar10_networks() -> None:
    with torch.device("meta"):
        g, d = build("generator"), build("discriminator")
    assert (count(g), count(d)) == PAPER_CONFIGS["stackedmnist"][1]
    assert (g.z_dim, g.num_classes, g.resolution, g.channels) == (64, 0, 32, 3)


# -- 2. shapes and ranges at small width ----------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [0, 5])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128])
def test_forward_shapes_and_ranges(resolution: int, channels: int, num_classes: int) -> None:
    """G's image at init has std in [0.15, 1.2] (measured 0.24–0.80 over these cases and 4 seeds): no squashing,
    the fix-up blocks are the identity, and the [1, 3, 3, 1] upsampling smooths the N(0, 1)-scaled 4×4 basis."""
    torch.manual_seed(0)
    params = stage_params(resolution, [32, 32, 16, 16, 16, 16], channels=channels, num_classes=num_classes)
    g, d = build("generator", **params), build("discriminator", **params)
    assert isinstance(g, Generator) and isinstance(d, Discriminator)
    assert g.output_shape == (channels, resolution, resolution)
    z = g.sample_z(4)
    c = torch.tensor([0, 1, 4, 2]) if num_classes else None
    with torch.no_grad():
        x = g(z, c)
        logits = d(x, c)
    assert x.shape == (4, channels, resolution, resolution) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert 0.15 <= x.std().item() <= 1.2
    assert (x[0] - x[1]).abs().max() > 1e-3, "different latents give different images"
    assert logits.shape == (4,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert logits.std() > 1e-4, "different images get different logits"


def test_discriminator_takes_a_single_image() -> None:
    d = build("discriminator", **stage_params(8, [8, 8]))
    with torch.no_grad():
        assert d(torch.randn(1, 3, 8, 8)).shape == (1,)


# -- 3. gradients ---------------------------------------------------------------------------------------------


def small_conditional_pair() -> tuple[nn.Module, nn.Module]:
    params = dict(widths=[16, 8, 8], cardinalities=[2, 2, 4], blocks=[1, 2, 1], resolution=16, num_classes=3)
    return build("generator", **params), build("discriminator", **params)


def test_gradients_reach_every_parameter_after_one_step() -> None:
    """Fix-up zeroes each block's last 1×1 conv, so at init no gradient reaches the block's earlier layers (the
    branch's output is multiplied by zero weights); one optimizer step makes the last convs non-zero, and from
    the second step on every parameter of G and D gets a gradient."""
    torch.manual_seed(0)
    g, d = small_conditional_pair()
    params = [*g.parameters(), *d.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    z, c = torch.randn(4, 64), torch.tensor([0, 1, 2, 1])

    d(g(z, c), c).sum().backward()
    for block in blocks_of(g, d):
        for p in (block.expand.weight, block.act1.bias, block.grouped.weight, block.act2.bias):
            assert p.grad is not None and not p.grad.any(), "behind a zero conv at init"
        assert block.project.weight.grad.abs().sum() > 0
    optimizer.step()
    optimizer.zero_grad()

    d(g(z, c), c).sum().backward()
    for name, p in [*g.named_parameters(prefix="G"), *d.named_parameters(prefix="D")]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), name


def test_gradients_reach_every_parameter_with_trained_blocks() -> None:
    torch.manual_seed(1)
    g, d = small_conditional_pair()
    perturb_blocks(g, d)
    d(g(torch.randn(4, 64), torch.tensor([2, 0, 1, 1])), torch.tensor([2, 0, 1, 1])).sum().backward()
    for name, p in [*g.named_parameters(prefix="G"), *d.named_parameters(prefix="D")]:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("num_classes", [0, 3])
def test_r1_double_backward_reaches_the_discriminator(num_classes: int) -> None:
    """R1 = ‖∇ₓ Σ D(x)‖², differentiated again. Every weight gets a gradient; the activation biases get
    exactly zero, since D is piecewise linear in x: a bias only moves the kinks, and ∇ₓD is piecewise constant
    in it."""
    torch.manual_seed(2)
    params = dict(widths=[16, 8], cardinalities=[2, 2], blocks=[1, 2], resolution=8, num_classes=num_classes)
    d = build("discriminator", **params)
    perturb_blocks(d)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    c = torch.tensor([0, 1, 2, 0]) if num_classes else None
    (grad,) = torch.autograd.grad(d(x, c).sum(), x, create_graph=True)
    grad.square().sum().backward()
    for name, p in d.named_parameters():
        if name.endswith("bias"):
            assert p.grad is None or not p.grad.any(), name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"R1 does not reach {name}"


# -- 4. initialisation ----------------------------------------------------------------------------------------


@FEW
@given(
    channels=st.integers(1, 12), expansion=st.integers(1, 3), kernel_size=st.sampled_from([1, 3, 5]),
    total=st.integers(1, 40), groups_index=st.integers(0, 5), seed=st.integers(0, 2**16),
)
def test_residual_block_is_exactly_the_identity_at_init(
    channels: int, expansion: int, kernel_size: int, total: int, groups_index: int, seed: int
) -> None:
    inner = channels * expansion
    divisors = [k for k in range(1, inner + 1) if inner % k == 0]
    torch.manual_seed(seed)
    block = ResidualBlock(channels, divisors[groups_index % len(divisors)], expansion, kernel_size, total)
    assert not block.project.weight.any()
    x = torch.randn(2, channels, 6, 6) * 10
    assert torch.equal(block(x), x)


def test_every_block_of_both_networks_is_the_identity_at_init() -> None:
    torch.manual_seed(3)
    g, d = small_conditional_pair()
    seen: list[bool] = []
    hooks = [b.register_forward_hook(lambda m, args, out: seen.append(torch.equal(out, args[0])))
             for b in blocks_of(g, d)]
    with torch.no_grad():
        d(g(torch.randn(2, 64), torch.tensor([0, 1])), torch.tensor([0, 1]))
    for hook in hooks:
        hook.remove()
    assert len(seen) == 8 and all(seen)


def tolerance(weights: Tensor) -> float:
    """Five standard errors of a sample std of ``weights.numel()`` normal draws, relative: 5/√(2n)."""
    return 5 / math.sqrt(2 * weights.numel())


def test_activation_gain_and_msr_init() -> None:
    assert LEAKY_GAIN == pytest.approx(ACTIVATION_GAIN, rel=1e-12)
    torch.manual_seed(9)
    weight = torch.empty(256, 64, 5, 5)
    msr_init_(weight, 1.7)
    assert weight.std().item() == pytest.approx(1.7 / math.sqrt(64 * 25), rel=tolerance(weight))
    msr_init_(weight, 0.0)
    assert not weight.any()


@FEW
@given(total=st.integers(1, 64), kernel_size=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
def test_block_convolutions_have_msr_fixup_std(total: int, kernel_size: int, seed: int) -> None:
    """expand: 256 → 512, fan_in 256; grouped: 512 channels in 16 groups, fan_in 32·k²; std within 4 standard
    errors (1% for expand), tight enough to tell √(2/(1 + 0.2²)) from √2."""
    torch.manual_seed(seed)
    block = ResidualBlock(256, 16, 2, kernel_size, total)
    gain = ACTIVATION_GAIN * total ** (-1 / 4)
    expand, grouped = block.expand.weight, block.grouped.weight
    assert expand.shape == (512, 256, 1, 1) and grouped.shape == (512, 32, kernel_size, kernel_size)
    assert block.grouped.groups == 16 and block.project.weight.shape == (256, 512, 1, 1)
    assert expand.std().item() == pytest.approx(gain / math.sqrt(256), rel=tolerance(expand))
    assert grouped.std().item() == pytest.approx(gain / math.sqrt(32 * kernel_size**2), rel=tolerance(grouped))
    assert abs(expand.mean().item()) < 5 * gain / math.sqrt(256) / math.sqrt(expand.numel())


def test_networks_count_all_their_blocks_for_the_fixup_gain() -> None:
    """L is the total number of blocks over all stages (here 1 + 3 = 4), in G and in D alike."""
    torch.manual_seed(4)
    params = dict(widths=[64, 64], cardinalities=[8, 8], blocks=[1, 3], resolution=8)
    gain = ACTIVATION_GAIN * 4 ** (-1 / 4)
    for net in (build("generator", **params), build("discriminator", **params)):
        blocks = blocks_of(net)
        assert len(blocks) == 4
        expand = torch.cat([b.expand.weight.flatten() for b in blocks]) * math.sqrt(64)
        grouped = torch.cat([b.grouped.weight.flatten() for b in blocks]) * math.sqrt(16 * 9)
        assert expand.std().item() == pytest.approx(gain, rel=tolerance(expand))
        assert grouped.std().item() == pytest.approx(gain, rel=tolerance(grouped))
        assert all(not b.project.weight.any() for b in blocks)


def test_resample_kernels() -> None:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    expected = torch.outer(taps, taps) / 64
    assert torch.allclose(Resample("down").kernel, expected, rtol=0, atol=1e-7)
    assert torch.allclose(Resample("up").kernel, expected * 4, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="'up' or 'down'"):
        Resample("sideways")


@FEW
@given(value=st.floats(-100, 100), side=st.sampled_from([4, 6, 8]), channels=st.integers(1, 3))
def test_resampling_keeps_a_constant_in_the_interior(value: float, side: int, channels: int) -> None:
    x = torch.full((2, channels, side, side), value)
    up, down = Resample("up")(x), Resample("down")(x)
    assert up.shape == (2, channels, 2 * side, 2 * side) and down.shape == (2, channels, side // 2, side // 2)
    assert torch.allclose(up[..., 1:-1, 1:-1], x[:1, :1, :1, :1].expand_as(up[..., 1:-1, 1:-1]), atol=1e-4)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], value), atol=1e-4)


def affine_image(side: int, a: float, b: float, c: float, positions: Tensor | None = None) -> Tensor:
    p = torch.arange(side, dtype=torch.float64) if positions is None else positions
    return (a + b * p[:, None] + c * p[None, :]).float()[None, None]


@FEW
@given(a=st.floats(-5, 5), b=st.floats(-1, 1), c=st.floats(-1, 1), side=st.sampled_from([6, 8, 12]))
def test_resampling_is_aligned_at_half_pixels(a: float, b: float, c: float, side: int) -> None:
    """Up: output pixel p lies at input coordinate p/2 − 1/4; down: output i at 2i + 1/2 (both bilinear on ramps)."""
    x = affine_image(side, a, b, c)
    up = Resample("up")(x)
    at_up = affine_image(2 * side, a, b, c, torch.arange(2 * side, dtype=torch.float64) / 2 - 0.25)
    assert torch.allclose(up[..., 1:-1, 1:-1], at_up[..., 1:-1, 1:-1], atol=1e-4)
    down = Resample("down")(x)
    at_down = affine_image(side // 2, a, b, c, 2 * torch.arange(side // 2, dtype=torch.float64) + 0.5)
    assert torch.allclose(down[..., 1:-1, 1:-1], at_down[..., 1:-1, 1:-1], atol=1e-4)


@FEW
@given(
    wy=st.floats(0, math.pi), wx=st.floats(0, math.pi), py=st.floats(0, 6.3), px=st.floats(0, 6.3),
    side=st.sampled_from([8, 16]),
)
def test_up_then_down_is_the_3_tap_low_pass(wy: float, wx: float, py: float, px: float, side: int) -> None:
    """down(up(x)) filters each axis with [3, 10, 3]/16: sin(ωi + φ) comes back scaled by (5 + 3 cos ω)/8."""
    i = torch.arange(side, dtype=torch.float64)
    x = (torch.sin(wy * i + py)[:, None] * torch.sin(wx * i + px)[None, :]).float()[None, None]
    y = Resample("down")(Resample("up")(x))
    response = (5 + 3 * math.cos(wy)) / 8 * (5 + 3 * math.cos(wx)) / 8
    assert torch.allclose(y[..., 1:-1, 1:-1], response * x[..., 1:-1, 1:-1], atol=1e-5)


@FEW
@given(
    a=st.floats(-3, 3), b=st.floats(-0.2, 0.2), c=st.floats(-0.2, 0.2), amplitude=st.floats(0, 2),
    wy=st.floats(0, 2 * math.pi / 24), wx=st.floats(0, 2 * math.pi / 24), py=st.floats(0, 6.3),
)
def test_up_then_down_of_a_smooth_image_is_nearly_the_identity(
    a: float, b: float, c: float, amplitude: float, wy: float, wx: float, py: float
) -> None:
    """Ramps come back exactly, wavelengths ≥ 24 px within 2.6% of their amplitude."""
    i = torch.arange(16, dtype=torch.float64)
    wave = amplitude * torch.sin(wy * i + py)[:, None] * torch.cos(wx * i)[None, :]
    x = affine_image(16, a, b, c) + wave.float()[None, None]
    y = Resample("down")(Resample("up")(x))
    error = (y - x)[..., 1:-1, 1:-1].abs().max().item()
    assert error <= 0.026 * amplitude + 1e-5


@FEW
@given(inputs=st.integers(32, 64), kernel_size=st.sampled_from([1, 3, 5]), seed=st.integers(0, 2**16))
def test_leaky_gain_conv_keeps_the_second_moment(inputs: int, kernel_size: int, seed: int) -> None:
    """E[leaky_relu(x)²] = (1 + 0.2²)/2 for x ~ N(0, 1); gain √(2/(1 + 0.2²)) restores 1 (measured away from the
    zero-padded border; 512 output channels keep the weights' own randomness at ~2%)."""
    torch.manual_seed(seed)
    conv = Conv(inputs, 512, kernel_size, gain=LEAKY_GAIN)
    x = torch.randn(2, inputs, 12, 12)
    with torch.no_grad():
        y = conv(F.leaky_relu(x, 0.2))
    border = kernel_size // 2
    interior = y[..., border:12 - border, border:12 - border]
    assert interior.square().mean().item() == pytest.approx(x.square().mean().item(), rel=0.10)


@pytest.mark.parametrize("total", [2, 4, 8])
def test_fixup_bounds_the_variance_growth_through_all_blocks(total: int) -> None:
    """L = ``total`` blocks in one stage (64 channels, cardinality 8, E = 2), every last conv re-initialised like
    the others. Measured second-moment growth over all L blocks, seeds 0–5 and widths 32–128: L=2 2.2–3.1,
    L=4 2.0–2.8, L=8 1.7–1.9 (fix-up's L^(−1/4) keeps it bounded as L grows); asserted: 1.3 to 3.6. Without the
    L^(−1/4) it explodes: 6–9, 47–108, 1400–7600; asserted: above 4·1.5^(L−2) (4, 9, 45)."""
    torch.manual_seed(total)
    stage = nn.Sequential(*[ResidualBlock(64, 8, 2, 3, total) for _ in range(total)])
    x = torch.randn(4, 64, 16, 16)
    for block in stage:
        msr_init_(block.project.weight, LEAKY_GAIN * total ** (-1 / 4))
    with torch.no_grad():
        growth = (stage(x).square().mean() / x.square().mean()).item()
    assert 1.3 <= growth <= 3.6
    for block in stage:
        for conv in (block.expand, block.grouped, block.project):
            msr_init_(conv.weight, LEAKY_GAIN)
    with torch.no_grad():
        unscaled = (stage(x).square().mean() / x.square().mean()).item()
    assert unscaled > 4 * 1.5 ** (total - 2)


# -- 5. conditioning ------------------------------------------------------------------------------------------


def test_generator_output_depends_on_the_label() -> None:
    torch.manual_seed(5)
    g = build("generator", **stage_params(16, [16, 16, 8], num_classes=4))
    z = torch.randn(1, 64).expand(4, 64)
    with torch.no_grad():
        images = g(z, torch.arange(4))
        again = g(z, torch.arange(4))
    assert torch.equal(images, again)
    for i in range(4):
        for j in range(i):
            assert (images[i] - images[j]).abs().max() > 1e-2 * images.std(), (i, j)


@pytest.mark.parametrize("embed_dim", [None, 12])
def test_discriminator_projects_its_head_onto_the_class_embedding(embed_dim: int | None) -> None:
    torch.manual_seed(6)
    classes = 5
    extra = {"embed_dim": embed_dim} if embed_dim else {}
    d = build("discriminator", **stage_params(16, [16, 8, 8], num_classes=classes, **extra))
    dim = embed_dim or 16  # the 4×4 stage's width by default
    perturb_blocks(d)
    assert d.embed.weight.shape == (dim, classes)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        head = d.stages(d.from_image(x))  # the head's vector, shape (N, dim), independent of the label
        assert head.shape == (3, dim)
        table = head @ d.embed.weight  # (N, classes): the head dotted with each class's embedding column
        for k in range(classes):
            logits = d(x, torch.full((3,), k))
            assert torch.allclose(logits, table[:, k], atol=1e-5)
            assert torch.allclose(logits, (head * d.embed.weight[:, k]).sum(1), atol=1e-5)
        mixed = d(x, torch.tensor([4, 0, 2]))
    assert torch.allclose(mixed, table[torch.arange(3), torch.tensor([4, 0, 2])], atol=1e-5)


def test_discriminator_embedding_init() -> None:
    """Projection embedding: MSR with fan_in = classes and gain 1/√embed_dim, i.e. std 1/√(classes·embed_dim)."""
    torch.manual_seed(7)
    d = build("discriminator", **stage_params(8, [64, 64], num_classes=100))
    assert d.embed.weight.std().item() == pytest.approx(1 / math.sqrt(100 * 64), rel=0.05)


# -- 6. bfloat16 stages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_bf16_stages_run_the_highest_resolutions_in_bfloat16(k: int) -> None:
    """Relative L2 error against the same weights in fp32: measured ≤ 1.0% (images) and ≤ 1.1% (logits) over
    5 seeds and k = 1..3; asserted ≤ 5% (bf16 keeps 8 bits of mantissa)."""
    torch.manual_seed(8)
    params = dict(widths=[8, 8, 4], cardinalities=[2, 2, 2], blocks=[1, 1, 1], resolution=16, num_classes=2)
    g, d = build("generator", bf16_stages=k, **params), build("discriminator", bf16_stages=k, **params)
    perturb_blocks(g, d)
    bf16, fp32 = torch.bfloat16, torch.float32
    assert [s.dtype for s in g.stages] == [fp32] * (3 - k) + [bf16] * k, "G: its last k stages"
    assert [s.dtype for s in d.stages] == [bf16] * k + [fp32] * (3 - k), "D: its first k stages"
    assert all(p.dtype == fp32 for p in [*g.parameters(), *d.parameters()]), "weights stay fp32"

    seen: list[tuple[torch.dtype, torch.dtype]] = []
    hooks = [m.register_forward_hook(lambda m, args, out, s=s: seen.append((s.dtype, out.dtype)))
             for s in [*g.stages, *d.stages] for m in s]
    z, c = torch.randn(2, 64), torch.tensor([0, 1])
    with torch.no_grad():
        image = g(z, c)
        logits = d(image, c)
    for hook in hooks:
        hook.remove()
    assert seen and all(stage == layer for stage, layer in seen), "every layer computes in its stage's dtype"
    assert image.dtype == fp32 and logits.dtype == fp32

    g32, d32 = build("generator", **params), build("discriminator", **params)
    g32.load_state_dict(g.state_dict())
    d32.load_state_dict(d.state_dict())
    with torch.no_grad():
        image32 = g32(z, c)
        logits_of_same_image = d32(image, c)
    assert (image - image32).norm() <= 0.05 * image32.norm()
    assert (logits - logits_of_same_image).norm() <= 0.05 * logits_of_same_image.norm() + 1e-3
    assert k == 0 or not torch.equal(image, image32), "bf16 really ran"


# -- 7. validation --------------------------------------------------------------------------------------------

BAD = [
    (dict(widths=[32] * 3), ["widths has 3 stages", "resolution 32 needs 4"]),
    (dict(cardinalities=[96] * 5), ["cardinalities has 5 stages", "resolution 32 needs 4"]),
    (dict(blocks=[2] * 2, resolution=64), ["has 4 stages", "resolution 64 needs 5"]),
    (dict(widths=[30] * 4, cardinalities=[7] * 4), ["cardinality 7", "30×2 = 60"]),
    (dict(widths=[32] * 4, cardinalities=[64] * 4, expansion=1), ["cardinality 64", "32×1 = 32"]),
    (dict(resolution=48), ["resolution 48", "power of two"]),
    (dict(bf16_stages=5), ["bf16_stages = 5", "4 stages"]),
    (dict(kernel_size=4), ["kernel_size = 4", "odd"]),
]


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize(("params", "words"), BAD)
def test_bad_combinations_give_one_clear_problem(
    gancore_registry: MakeRegistry, kind: str, params: dict[str, Any], words: list[str]
) -> None:
    registry = gancore_registry(gancore_r3gan)
    with pytest.raises(ConfigError) as info:
        registry.validate_params(kind, "r3gan", params, path=kind)
    (problem,) = info.value.problems
    assert problem.startswith(f"{kind}.params: ")
    for word in words:
        assert word in problem
    with pytest.raises(ConfigError):
        registry.create(kind, "r3gan", params)


def is_valid(kind: str, params: dict[str, Any]) -> bool:
    try:
        REGISTRY.validate_params(kind, "r3gan", params)
    except ConfigError as exc:
        assert len(exc.problems) == 1
        return False
    return True


@FEW
@given(log2=st.integers(3, 10), length=st.integers(1, 10), which=st.sampled_from(["widths", "cardinalities", "blocks"]))
def test_lists_need_one_entry_per_stage(log2: int, length: int, which: str) -> None:
    stages = log2 - 1
    params: dict[str, Any] = dict(widths=[8] * stages, cardinalities=[2] * stages, blocks=[1] * stages,
                                  resolution=2**log2)
    params[which] = params[which][:1] * length
    assert is_valid("generator", params) == is_valid("discriminator", params) == (length == stages)


@FEW
@given(resolution=st.integers(8, 1024))
def test_resolution_must_be_a_power_of_two(resolution: int) -> None:
    stages = max(1, round(math.log2(resolution)) - 1)
    params = dict(widths=[8] * stages, cardinalities=[2] * stages, blocks=[1] * stages, resolution=resolution)
    assert is_valid("generator", params) == (resolution & (resolution - 1) == 0)


@FEW
@given(width=st.integers(1, 64), groups=st.integers(1, 64), expansion=st.integers(1, 4))
def test_cardinality_must_divide_the_inner_width(width: int, groups: int, expansion: int) -> None:
    params = dict(widths=[width] * 2, cardinalities=[groups] * 2, blocks=[1] * 2, resolution=8, expansion=expansion)
    assert is_valid("discriminator", params) == (width * expansion % groups == 0)


@FEW
@given(log2=st.integers(3, 8), bf16_stages=st.integers(0, 10), kernel_size=st.integers(1, 9))
def test_bf16_stages_and_kernel_size_limits(log2: int, bf16_stages: int, kernel_size: int) -> None:
    stages = log2 - 1
    params = dict(widths=[8] * stages, cardinalities=[2] * stages, blocks=[1] * stages, resolution=2**log2,
                  bf16_stages=bf16_stages, kernel_size=kernel_size)
    assert is_valid("generator", params) == (bf16_stages <= stages and kernel_size % 2 == 1)


# -- 8. registration ------------------------------------------------------------------------------------------


def test_plugin_registers_both_networks(gancore_registry: MakeRegistry) -> None:
    registry = gancore_registry(gancore_r3gan)
    info = registry.plugins["gancore_r3gan"]
    assert (info.status, info.error) == ("ok", "")
    assert sorted(info.components) == ["discriminator:r3gan", "generator:r3gan"]
    assert "r3gan" in registry.names("generator") and "r3gan" in registry.names("discriminator")
    assert registry.get("generator", "r3gan").plugin == "gancore_r3gan"
    assert gancore_r3gan.GANCORE_API_VERSION == CORE_API_VERSION
