"""Throughput of one R3GAN training step on CIFAR-10's networks, in fp32 and bf16, against dense-kernel baselines.

What: the images per second of one full training step of R3GAN's CIFAR-10 configuration (generator and
discriminator ``r3gan`` with their default, CIFAR-10, parameters: widths 768×4, cardinality 96, 2 blocks per
stage; conditional on 10 classes). A step is gancore's own: ``Trainer.discriminator_phase`` (G's fakes without
grad, D on reals and fakes, the ``rpgan`` loss, ``r1`` and ``r2`` with γ 0.05 from one ``autograd.grad`` over both
inputs with ``create_graph=True``, backward, Adam) followed by ``Trainer.generator_phase`` (G's fakes, D on them
and, without grad, on a second real batch, RpGAN's generator loss, backward, Adam). G's EMA and the ADA
augmenter of ``recipes/r3gan_cifar10.yaml`` are not part of it.
``fp32`` is the networks in float32; ``bf16`` sets ``bf16_stages=3`` on both networks (the three highest
resolutions compute in bfloat16, the 4×4 stage in float32), the R3GAN reference's setting.

For each precision it reports seconds per step, images per second, the FLOPs per image of the step (counted
with ``torch.utils.flop_counter.FlopCounterMode`` over one step: convolutions and matrix products, forward,
backward and the double backward of R1/R2; elementwise work is not counted), G's and D's forward FLOPs per image,
and the achieved FLOP/s against a dense N×N matrix product and a dense 3×3 convolution (256→256 channels, 32×32)
of the same dtype timed in the same run.

Why: to tell how far a training step is from what the device does on dense kernels (R3GAN's blocks are grouped
3×3 convolutions of 16 channels per group and 1×1 convolutions), and what bf16 buys.

How: reals are random images of a small in-memory data set, labels random; the networks are built by
``gancore.build.build_networks`` from a recipe checked by ``gancore.recipe.validate``, the loss by the registry.
One untimed step is counted for FLOPs, ``--warmup`` untimed steps follow, then ``--steps`` timed ones (CUDA is
synchronised around the timing; TF32 is off, as in the R3GAN reference). ``--channels-last`` is on by default on CUDA
and off on the CPU: on a 2-core Zen 3 CPU in fp32 it made the step 5–15% slower in a tiny check (widths 64 and 128,
batch 2) and 1.5% slower at full size (batch 8). Run:

    python benchmarks/r3gan_step.py --device cuda --batch 64 --precision fp32 bf16 --steps 10 --warmup 3 \
        --json runs/r3gan_step.json

Smoke test on a CPU (tiny widths, small references):

    python benchmarks/r3gan_step.py --device cpu --widths 32 --batch 2 --precision fp32 bf16 \
        --matmul-size 512 --conv-batch 1
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from gancore.build import Parts, build_networks
from gancore.builtin.datasets.base import TensorImageDataset
from gancore.recipe import validate
from gancore.registry import Registry, default_registry
from gancore.data import to_model_space
from gancore.training import Trainer

NUM_CLASSES = 10
GAMMA = 0.05
"""R3GAN's γ for R1 and R2 on CIFAR-10."""
BF16_STAGES = 3
STAGES = 4
"""Resolutions 4, 8, 16, 32."""
CHANNELS_PER_GROUP = 16
"""Of the default networks' grouped convolutions (768·2 / 96); kept by ``--widths``."""
CONV_CHANNELS, CONV_SIDE = 256, 32
"""The dense 3×3 convolution used as a baseline."""
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
REFERENCE_SECONDS = 1.0
"""Least time spent timing each baseline kernel."""


@dataclass
class Result:
    """The measurements of one precision."""

    precision: str
    batch: int
    seconds_per_step: float
    step_seconds: list[float]
    images_per_second: float
    flop_per_image: float
    d_step_flop_per_image: float
    g_step_flop_per_image: float
    g_forward_flop_per_image: float
    d_forward_flop_per_image: float
    achieved_flops: float
    matmul_flops: float
    conv_flops: float

    @property
    def vs_matmul(self) -> float:
        """Achieved FLOP/s as a share of the dense matrix product's."""
        return self.achieved_flops / self.matmul_flops

    @property
    def vs_conv(self) -> float:
        """Achieved FLOP/s as a share of the dense convolution's."""
        return self.achieved_flops / self.conv_flops


def network_params(width: int | None, bf16: bool) -> dict[str, Any]:
    """Parameters of either ``r3gan`` network: the defaults (CIFAR-10), or every stage ``width`` wide."""
    params: dict[str, Any] = {"num_classes": NUM_CLASSES, "bf16_stages": BF16_STAGES if bf16 else 0}
    if width is not None:
        params.update(widths=[width] * STAGES, cardinalities=[width * 2 // CHANNELS_PER_GROUP] * STAGES)
    return params


def make_recipe(batch: int, device: str, width: int | None, bf16: bool) -> dict[str, Any]:
    """``recipes/r3gan_cifar10.yaml``'s networks, loss and R1/R2 at γ 0.05, without its schedules and ADA augmenter."""
    params = network_params(width, bf16)
    adam = {"lr": 2e-4, "beta1": 0.0, "beta2": 0.99}
    return {
        "data": {"name": "cifar10"},
        "generator": {"name": "r3gan", "params": params},
        "discriminator": {"name": "r3gan", "params": params},
        "loss": {"name": "rpgan"},
        "regularizers": [{"name": "r1", "params": {"gamma": GAMMA}}, {"name": "r2", "params": {"gamma": GAMMA}}],
        "train": {"batch_size": batch, "total_kimg": 1, "g_optimizer": adam, "d_optimizer": adam, "device": device},
    }


def make_trainer(raw: dict[str, Any], registry: Registry, data: TensorImageDataset, out_dir: Path,
                 channels_last: bool) -> Trainer:
    """gancore's Trainer on the recipe's networks, loss and regularizers, with ``data`` in place of CIFAR-10."""
    recipe = validate(raw, registry)
    nets = build_networks(recipe, registry)
    if channels_last:
        for net in (nets.generator, nets.discriminator):
            net.to(memory_format=torch.channels_last)
    loss = registry.create("loss", recipe.loss.name, recipe.loss.params)
    parts = Parts(nets.generator, nets.discriminator, nets.regularizers, data, loss, None, [])
    return Trainer(recipe, parts, out_dir, raw)


def random_data(batch: int, seed: int) -> TensorImageDataset:
    """Two batches of random 32×32 RGB images with random labels: one for D's phase, one for G's."""
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (2 * batch, 3, 32, 32), generator=rng, dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (2 * batch,), generator=rng)
    return TensorImageDataset(images, labels, NUM_CLASSES, xflip=False)


def batches(data: TensorImageDataset, batch: int, device: torch.device,
            channels_last: bool) -> list[tuple[Tensor, Tensor]]:
    """The data set's two batches as the Trainer feeds them: images in [-1, 1] and long labels, on the device."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = []
    for start in (0, batch):
        x = to_model_space(data.images[start:start + batch].to(device)).contiguous(memory_format=fmt)
        out.append((x, data.labels[start:start + batch].to(device).long()))
    return out


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker: every FLOP is counted under "Global" only."""

    parents = ("Global",)

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def conv_backward_flop(grad_out_shape: torch.Size, x_shape: torch.Size, w_shape: torch.Size, _bias: object,
                       _stride: object, _padding: object, _dilation: object, transposed: bool,
                       _output_padding: object, _groups: int, output_mask: list[bool], **_: object) -> int:
    """A convolution's backward: each gradient asked for (input, weight) costs as much as the forward.

    PyTorch's own formula counts the weight gradient of a grouped convolution ``groups`` times over.
    """
    spatial = (x_shape if transposed else grad_out_shape)[2:]
    forward = 2 * grad_out_shape[0] * math.prod(w_shape) * math.prod(spatial)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


class GlobalFlopCounter(FlopCounterMode):
    """FlopCounterMode without per-module attribution, and with grouped convolutions' backward counted right.

    Its ModuleTracker hooks the inputs of every module, which breaks ``autograd.grad`` with respect to a leaf
    input, here R1/R2's reals and fakes (pytorch/pytorch#131753).
    """

    def __init__(self) -> None:
        super().__init__(display=False, custom_mapping={torch.ops.aten.convolution_backward: conv_backward_flop})
        self.mod_tracker = _NoModuleTracking()


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products and convolutions (any direction) that ``fn`` dispatches."""
    with GlobalFlopCounter() as counter:
        fn()
    return counter.get_total_flops()


def time_kernel(fn: Callable[[], object], device: torch.device) -> float:
    """Mean seconds per call of ``fn`` after one untimed call, over at least two calls and REFERENCE_SECONDS."""
    fn()
    synchronize(device)
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < REFERENCE_SECONDS:
        fn()
        synchronize(device)
        calls += 1
    return (time.perf_counter() - start) / calls


def matmul_flops(size: int, dtype: torch.dtype, device: torch.device) -> float:
    """FLOP/s of a dense size×size matrix product."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    return 2 * size**3 / time_kernel(lambda: a @ b, device)


def conv_flops(batch: int, dtype: torch.dtype, device: torch.device, channels_last: bool) -> float:
    """FLOP/s of a dense 3×3 convolution, CONV_CHANNELS → CONV_CHANNELS at CONV_SIDE², padding 1."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, CONV_CHANNELS, CONV_SIDE, CONV_SIDE, device=device, dtype=dtype)
    w = torch.randn(CONV_CHANNELS, CONV_CHANNELS, 3, 3, device=device, dtype=dtype)
    x, w = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)
    flop = 2 * batch * CONV_CHANNELS * CONV_CHANNELS * 9 * CONV_SIDE**2
    return flop / time_kernel(lambda: F.conv2d(x, w, padding=1), device)


def forward_flops(trainer: Trainer, real: Tensor, c: Tensor) -> tuple[int, int]:
    """FLOPs of one forward pass of G and of D on the batch, without grad."""
    z = trainer.G.sample_z(len(real), trainer.device, trainer.z_rng)
    with torch.no_grad():
        return count_flops(lambda: trainer.G(z, c)), count_flops(lambda: trainer.D(real, c))


def train_step(trainer: Trainer, real_d: Tensor, c_d: Tensor, real_g: Tensor, c_g: Tensor) -> None:
    """D's phase on one real batch, then G's phase with a second real batch, as ``Trainer.run`` does."""
    trainer.discriminator_phase(real_d, c_d)
    trainer.generator_phase(real_g, c_g)


def measure(precision: str, args: argparse.Namespace, device: torch.device, registry: Registry) -> Result:
    """Build the networks in ``precision``, count one step's FLOPs, warm up, time the steps and the baselines."""
    bf16 = precision == "bf16"
    data = random_data(args.batch, seed=0)
    raw = make_recipe(args.batch, device.type, args.widths, bf16)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(raw, registry, data, Path(tmp), args.channels_last == "on")
        (real_d, c_d), (real_g, c_g) = batches(data, args.batch, device, args.channels_last == "on")
        d_flop = count_flops(lambda: trainer.discriminator_phase(real_d, c_d))
        g_flop = count_flops(lambda: trainer.generator_phase(real_g, c_g))
        g_fwd, d_fwd = forward_flops(trainer, real_d, c_d)
        for _ in range(args.warmup):
            train_step(trainer, real_d, c_d, real_g, c_g)
        times = []
        for _ in range(args.steps):
            synchronize(device)
            start = time.perf_counter()
            train_step(trainer, real_d, c_d, real_g, c_g)
            synchronize(device)
            times.append(time.perf_counter() - start)
        trainer.log.close()
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    dtype = DTYPES[precision]
    seconds = sum(times) / len(times)
    per_image = (d_flop + g_flop) / args.batch
    return Result(
        precision=precision, batch=args.batch, seconds_per_step=seconds, step_seconds=times,
        images_per_second=args.batch / seconds, flop_per_image=per_image,
        d_step_flop_per_image=d_flop / args.batch, g_step_flop_per_image=g_flop / args.batch,
        g_forward_flop_per_image=g_fwd / args.batch, d_forward_flop_per_image=d_fwd / args.batch,
        achieved_flops=per_image * args.batch / seconds,
        matmul_flops=matmul_flops(args.matmul_size, dtype, device),
        conv_flops=conv_flops(args.conv_batch, dtype, device, args.channels_last == "on"),
    )


def table(results: list[Result]) -> str:
    """The results as a markdown table, with the bf16/fp32 speed ratio when both were run."""
    lines = ["| precision | batch | s/step | img/s | GFLOP/img | achieved GFLOP/s | vs matmul | vs dense conv |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.precision} | {r.batch} | {r.seconds_per_step:.4g} | {r.images_per_second:.4g} | "
              f"{r.flop_per_image / 1e9:.4g} | {r.achieved_flops / 1e9:.4g} | {r.vs_matmul:.3f} | {r.vs_conv:.3f} |"
              for r in results]
    speeds = {r.precision: r.images_per_second for r in results}
    if {"fp32", "bf16"} <= speeds.keys():
        lines.append(f"\nbf16 / fp32 speed: {speeds['bf16'] / speeds['fp32']:.3f}×")
    return "\n".join(lines)


def details(r: Result, args: argparse.Namespace) -> str:
    """The FLOP breakdown and the baselines of one precision, in a line each."""
    return (f"{r.precision}: step {r.flop_per_image / 1e9:.4g} GFLOP/img (D step {r.d_step_flop_per_image / 1e9:.4g}, "
            f"G step {r.g_step_flop_per_image / 1e9:.4g}); forward G {r.g_forward_flop_per_image / 1e9:.4g}, "
            f"D {r.d_forward_flop_per_image / 1e9:.4g} GFLOP/img\n"
            f"{r.precision}: matmul {args.matmul_size}² {r.matmul_flops / 1e9:.4g} GFLOP/s, dense conv 3×3 "
            f"{CONV_CHANNELS}→{CONV_CHANNELS} {CONV_SIDE}² batch {args.conv_batch} "
            f"{r.conv_flops / 1e9:.4g} GFLOP/s; "
            f"steps {', '.join(f'{t:.4g}' for t in r.step_seconds)} s")


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's as the platform reports it."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")


def parse_args() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="real images per D step (and fakes per G step)")
    p.add_argument("--precision", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before them (after the FLOP-counted step)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--channels-last", choices=["on", "off"], default="on" if torch.cuda.is_available() else "off",
                   help="networks, inputs and the baseline convolution in torch.channels_last")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--widths", type=int, help="every stage this wide, cardinality width/8 (smoke tests; "
                                              "default: the CIFAR-10 networks)")
    p.add_argument("--matmul-size", type=int, default=4096, help="side of the baseline matrix product")
    p.add_argument("--conv-batch", type=int, default=8, help="batch of the baseline convolution")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    if args.widths is not None and args.widths % (CHANNELS_PER_GROUP // 2):
        p.error(f"--widths must be a multiple of {CHANNELS_PER_GROUP // 2}")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def main() -> None:
    """Measure every requested precision, print the table, and write the JSON if asked."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    registry = default_registry()
    results = []
    for precision in args.precision:
        results.append(measure(precision, args, device, registry))
        print(details(results[-1], args), flush=True)
    widths = f"{args.widths}×{STAGES}" if args.widths else "768×4 (CIFAR-10)"
    print(f"\n{device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads, widths {widths}, "
          f"channels_last {args.channels_last}\n")
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        payload = {"device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "config": config, "results": [{**asdict(r), "vs_matmul": r.vs_matmul, "vs_conv": r.vs_conv}
                                                 for r in results]}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
