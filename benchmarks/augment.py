"""Throughput of ADA's ``bgc`` augmentation against a plain chain of kornia's stock augmentations.

What: images per second of gancore-ada's ``ada`` augmenter (preset ``bgc``, p = 0.5, float32), forward only
and forward + backward with respect to the input, on batches of 64 × 3 × 32² and 16 × 3 × 256² (``--shape``
adds others, e.g. 512×3×32×32 on a GPU), against ``kornia.augmentation.AugmentationSequential`` of kornia's
stock operations with the nearest distributions they offer, each applied with probability 0.5:

    RandomHorizontalFlip                     x-flip
    RandomRotation90(times=(0, 3))           90° rotations
    RandomAffine(translate=(0.125, 0.125))   integer translation (kornia's is continuous, uniform)
    RandomAffine(scale=(2^-0.4, 2^0.4))      isotropic scaling (uniform in kornia; ADA: 2^N(0, 0.2²))
    RandomRotation(180)                      rotation, U(−180°, 180°)
    RandomAffine(scale=(2^-0.4, 2^0.4) × 2)  anisotropic scaling (independent x and y factors)
    RandomAffine(translate=(0.125, 0.125))   fractional translation (ADA: N(0, 0.125²))
    RandomBrightness, RandomContrast,        brightness, contrast (2^±1), hue (±π),
    RandomHue, RandomSaturation              saturation (2^±2); kornia has no luma flip
    (geometric ops reflect-pad, as ADA does)

The chain resamples once per geometric operation at 1× without anti-aliasing; ``ada`` composes the
geometry into one matrix and resamples once at 2× with the sym6 wavelet (exact blits skip resampling).

How: the two are timed alternately in the same process (``--repeats`` rounds of ``--iters`` calls after
``--warmup``), and the median round is reported, with the ratio ada / chain. Run:

    python benchmarks/augment.py                       # this CPU, both shapes
    python benchmarks/augment.py --device cuda --shape 512x3x32x32 --shape 64x3x256x256

Reference (ada.md, the CEO's measurement on this project's 2-core CPU): NVlabs' AugmentPipe, bgc, p = 0.5,
fp32: 294 img/s at 64×3×32², 6 img/s at 16×3×256².
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import kornia
import kornia.augmentation as K
import torch
from gancore.registry import default_registry
from torch import Tensor


def kornia_chain(p: float) -> K.AugmentationSequential:
    """kornia's stock operations standing in for ADA's bgc, each applied with probability p."""
    span = (2 ** -0.4, 2 ** 0.4)
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=p),
        K.RandomRotation90(times=(0, 3), p=p),
        K.RandomAffine(degrees=0, translate=(0.125, 0.125), padding_mode="reflection", p=p),
        K.RandomAffine(degrees=0, scale=span, padding_mode="reflection", p=p),
        K.RandomRotation(degrees=180.0, p=p),
        K.RandomAffine(degrees=0, scale=span + span, padding_mode="reflection", p=p),
        K.RandomAffine(degrees=0, translate=(0.125, 0.125), padding_mode="reflection", p=p),
        K.RandomBrightness(brightness=(0.8, 1.2), p=p),
        K.RandomContrast(contrast=(0.5, 2.0), p=p),
        K.RandomHue(hue=(-0.5, 0.5), p=p),
        K.RandomSaturation(saturation=(0.25, 4.0), p=p),
    )


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def step(augment: Callable[[Tensor], Tensor], x: Tensor, backward: bool) -> Callable[[], object]:
    """One call of ``augment``; with ``backward``, also the gradient of a scalar w.r.t. the input."""
    def run() -> object:
        if not backward:
            with torch.no_grad():
                return augment(x)
        inp = x.detach().requires_grad_(True)
        augment(inp).square().mean().backward()
        return inp.grad
    return run


def measure(shape: tuple[int, ...], args: argparse.Namespace, device: torch.device) -> list[dict]:
    x = (torch.rand(shape, device=device) * 2 - 1)
    ada = default_registry().create("augmenter", "ada", {"preset": "bgc", "p": args.p}).to(device)
    chain = kornia_chain(args.p).to(device)
    rows = []
    for backward in (False, True):
        # kornia's chain works on [0, 1] images; ada on the networks' [-1, 1]
        runs = {"ada": step(ada, x, backward), "kornia chain": step(lambda t: chain(t * 0.5 + 0.5), x, backward)}
        for fn in runs.values():
            for _ in range(args.warmup):
                fn()
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                rounds[name].append(sum(timed(fn, device) for _ in range(args.iters)) / args.iters)
        med = {name: statistics.median(r) for name, r in rounds.items()}
        for name in runs:
            rows.append({"shape": "x".join(map(str, shape)), "pass": "fwd+bwd" if backward else "fwd",
                         "pipeline": name, "ms_per_batch": med[name] * 1000, "img_per_s": shape[0] / med[name],
                         "speedup_vs_chain": med["kornia chain"] / med[name]})
    return rows


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
        name = f"{model}, {torch.get_num_threads()} threads"
    return f"{name}; torch {torch.__version__}, kornia {kornia.__version__}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", action="append", help="NxCxHxW (repeatable); default 64x3x32x32, 16x3x256x256")
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (this machine has 2 cores)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    shapes = [tuple(int(v) for v in s.split("x")) for s in (args.shape or ["64x3x32x32", "16x3x256x256"])]
    print(machine(device))
    rows = [row for shape in shapes for row in measure(shape, args, device)]
    print(f"{'shape':>14} {'pass':>8} {'pipeline':>13} {'ms/batch':>10} {'img/s':>9} {'× chain':>8}")
    for r in rows:
        print(f"{r['shape']:>14} {r['pass']:>8} {r['pipeline']:>13} {r['ms_per_batch']:>10.1f} "
              f"{r['img_per_s']:>9.1f} {r['speedup_vs_chain']:>8.2f}")
    print("NVlabs AugmentPipe (ada.md, this CPU): 294 img/s at 64×3×32², 6 img/s at 16×3×256² (bgc, p 0.5, fp32)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(device), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
