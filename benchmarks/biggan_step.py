"""Throughput of BigGAN's CIFAR-10 training step on this CPU, in fp32 and bf16, and the share spent in spectral norm.

What: images per second of one D step and of one G step of ``recipes/biggan_cifar10.yaml``'s networks (BigGAN, ch 64,
10 classes, no attention, no shared embedding; spectral norm on every conv, linear and embedding of G and D from
gancore-sn, ε 1e-8; hinge loss; Adam), run by gancore's own ``Trainer.discriminator_phase`` (G's fakes without grad, D
on the reals and on the fakes, hinge, backward, Adam) and ``Trainer.generator_phase`` (G's fakes, D on them, backward,
Adam). G's EMA is not part of it. The recipe's iteration is 4 D steps and 1 G step; its rate in real images shown to
D per second is derived from the two: 4·batch / (4·t_D + t_G).

Three variants of the same networks (same seed, same initial weights), timed in turns, step by step:

- ``sn``: as the recipe;
- ``sn_frozen``: the same, with every ``SpectralNormWeight`` parametrization in eval mode, which skips its power
  iteration but still computes σ = uᵀWv and W/σ; ``1 − t_frozen / t_sn`` is the share of the step spent in power
  iterations;
- ``no_sn``: without spectral norm, the baseline; ``1 − t_no_sn / t_sn`` is the share of all of spectral norm.

After the timed turns, ``--steps`` more steps of ``sn`` run with forward hooks around every SN parametrization: the
time inside them (power iteration, σ and W/σ, forward only; their backward is not included) as a share of those
steps, and how many times per step a weight is normalised (once per layer per forward: D runs twice in a D step,
on reals and on fakes, so its power iterations run twice).

Why: BigGAN spends part of every forward on power iterations for ~40 layers per network; whether that matters on a
CPU, and what bf16 autocast buys (gancore-sn computes σ in fp32 under autocast).

How: reals are random uint8 images with random labels held in memory; the recipe is checked by
``gancore.recipe.validate`` against a registry of gancore, gancore-biggan and gancore-sn, the networks are built by
``gancore.build.build_networks``. Run (after ``pip install -e plugins/biggan -e plugins/sn``):

    OMP_NUM_THREADS=2 python benchmarks/biggan_step.py --batch 50 --precision fp32 bf16 --steps 3 --warmup 1

Smoke test (narrow networks): ``python benchmarks/biggan_step.py --ch 8 --batch 4 --steps 1 --warmup 0``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gancore_biggan
import gancore_sn
import torch
from gancore.build import Parts, build_networks
from gancore.builtin.datasets.base import TensorImageDataset
from gancore.data import to_model_space
from gancore.recipe import validate
from gancore.registry import Registry
from gancore.testing import make_registry
from gancore.training import Trainer
from gancore_sn import SpectralNormWeight
from torch import Tensor, nn

NUM_CLASSES = 10
D_STEPS = 4
"""D steps per G step in the authors' CIFAR-10 script."""
VARIANTS = ("sn", "sn_frozen", "no_sn")


@dataclass
class Result:
    """The timings of one variant in one precision (mean seconds of a D step and of a G step)."""

    precision: str
    variant: str
    batch: int
    d_seconds: float
    g_seconds: float

    @property
    def d_images_per_second(self) -> float:
        return self.batch / self.d_seconds

    @property
    def g_images_per_second(self) -> float:
        return self.batch / self.g_seconds

    @property
    def iteration_images_per_second(self) -> float:
        """Real images shown to D per second over the recipe's iteration of 4 D steps and 1 G step."""
        return D_STEPS * self.batch / (D_STEPS * self.d_seconds + self.g_seconds)


@dataclass
class HookedShare:
    """Time inside the SN parametrizations' forwards, measured with hooks over ``steps`` extra steps of ``sn``."""

    precision: str
    d_step_share: float
    g_step_share: float
    normalisations_per_d_step: float
    normalisations_per_g_step: float


def make_recipe(batch: int, ch: int, precision: str, spectral_norm: bool) -> dict[str, Any]:
    """``recipes/biggan_cifar10.yaml``'s networks, loss, SN and optimizers (``ch`` may narrow the networks)."""
    network = {"ch": ch, "resolution": 32, "num_classes": NUM_CLASSES, "attention": None, "init": "normal"}
    adam = {"lr": 2e-4, "beta1": 0.0, "beta2": 0.999, "eps": 1e-8}
    sn = {"targets": ["generator", "discriminator"], "eps": 1e-8, "n_power_iterations": 1, "include": ["*"],
          "exclude": []}
    return {
        "data": {"name": "cifar10"},
        "generator": {"name": "biggan", "params": {**network, "z_dim": 128, "shared_dim": 0, "hierarchical": False}},
        "discriminator": {"name": "biggan", "params": network},
        "loss": {"name": "hinge"},
        "regularizers": [{"name": "spectral_norm", "params": sn}] if spectral_norm else [],
        "train": {"batch_size": batch, "total_kimg": 1, "d_steps_per_g_step": D_STEPS, "g_optimizer": adam,
                  "d_optimizer": adam, "precision": precision, "device": "cpu", "num_workers": 0},
    }


def random_data(batch: int, seed: int) -> TensorImageDataset:
    """Two batches of random 32×32 RGB images with random labels: one for D's phase, one for G's."""
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (2 * batch, 3, 32, 32), generator=rng, dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (2 * batch,), generator=rng)
    return TensorImageDataset(images, labels, NUM_CLASSES, xflip=False)


def make_trainer(raw: dict[str, Any], registry: Registry, data: TensorImageDataset, out_dir: Path) -> Trainer:
    """gancore's Trainer on the recipe's networks, loss and spectral norm, with ``data`` in place of CIFAR-10."""
    recipe = validate(raw, registry)
    nets = build_networks(recipe, registry)
    loss = registry.create("loss", recipe.loss.name, recipe.loss.params)
    parts = Parts(nets.generator, nets.discriminator, nets.regularizers, data, loss, None, [])
    return Trainer(recipe, parts, out_dir, raw)


def parametrizations(trainer: Trainer) -> list[SpectralNormWeight]:
    """Every spectral-norm parametrization of the trainer's G and D."""
    return [m for net in (trainer.G, trainer.D) for m in net.modules() if isinstance(m, SpectralNormWeight)]


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class SNTimer:
    """Accumulates the time spent inside the forwards of the given modules, and counts them, through hooks."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._started = 0.0
        self.handles = [h for m in modules for h in (m.register_forward_pre_hook(self._pre),
                                                      m.register_forward_hook(self._post))]

    def _pre(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self._started = time.perf_counter()

    def _post(self, module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        self.seconds += time.perf_counter() - self._started
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def measure(precision: str, args: argparse.Namespace, registry: Registry) -> tuple[list[Result], HookedShare]:
    """Build the three variants, warm them up, time their D and G steps in turns, then the hooked SN share."""
    data = random_data(args.batch, seed=0)
    batches = [(to_model_space(data.images[i:i + args.batch]), data.labels[i:i + args.batch].long())
               for i in (0, args.batch)]
    (real_d, c_d), (real_g, c_g) = batches
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {
            variant: make_trainer(make_recipe(args.batch, args.ch, precision, variant != "no_sn"), registry, data,
                                  Path(tmp) / variant)
            for variant in VARIANTS
        }
        for module in parametrizations(trainers["sn_frozen"]):
            module.eval()  # W / σ from the stored u, v: no power iteration
        if not parametrizations(trainers["sn"]):
            raise SystemExit("gancore-sn attached no SpectralNormWeight parametrization; nothing to measure")
        d_times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        g_times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for step in range(args.warmup + args.steps):
            for variant, trainer in trainers.items():
                d = timed(lambda: trainer.discriminator_phase(real_d, c_d))
                g = timed(lambda: trainer.generator_phase(real_g, c_g))
                if step >= args.warmup:
                    d_times[variant].append(d)
                    g_times[variant].append(g)
        results = [Result(precision, v, args.batch, sum(d_times[v]) / args.steps, sum(g_times[v]) / args.steps)
                   for v in VARIANTS]
        sn = trainers["sn"]
        timer = SNTimer(parametrizations(sn))
        d_total = g_total = d_sn = g_sn = 0.0
        d_calls = g_calls = 0
        for _ in range(args.steps):
            timer.reset()
            d_total += timed(lambda: sn.discriminator_phase(real_d, c_d))
            d_sn, d_calls = d_sn + timer.seconds, d_calls + timer.calls
            timer.reset()
            g_total += timed(lambda: sn.generator_phase(real_g, c_g))
            g_sn, g_calls = g_sn + timer.seconds, g_calls + timer.calls
        timer.remove()
        for trainer in trainers.values():
            trainer.log.close()
    share = HookedShare(precision, d_sn / d_total, g_sn / g_total, d_calls / args.steps, g_calls / args.steps)
    return results, share


def table(results: list[Result], shares: list[HookedShare]) -> str:
    """The results as a markdown table, then the ratios that answer the benchmark's questions."""
    lines = ["| precision | variant | batch | D step s | D img/s | G step s | G img/s | 4D+1G real img/s |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.precision} | {r.variant} | {r.batch} | {r.d_seconds:.4g} | {r.d_images_per_second:.4g} | "
              f"{r.g_seconds:.4g} | {r.g_images_per_second:.4g} | {r.iteration_images_per_second:.4g} |"
              for r in results]
    by = {(r.precision, r.variant): r for r in results}
    lines.append("")
    for precision in dict.fromkeys(r.precision for r in results):
        sn, frozen, none = (by[(precision, v)] for v in VARIANTS)
        lines.append(
            f"{precision}: power iterations {1 - frozen.d_seconds / sn.d_seconds:.1%} of a D step, "
            f"{1 - frozen.g_seconds / sn.g_seconds:.1%} of a G step (sn vs sn_frozen); all of spectral norm "
            f"{1 - none.d_seconds / sn.d_seconds:.1%} of a D step, {1 - none.g_seconds / sn.g_seconds:.1%} of a G "
            f"step (sn vs no_sn)")
    for s in shares:
        lines.append(f"{s.precision}: inside SN parametrization forwards (hooks): {s.d_step_share:.1%} of a D step "
                     f"({s.normalisations_per_d_step:.0f} normalisations), {s.g_step_share:.1%} of a G step "
                     f"({s.normalisations_per_g_step:.0f})")
    if {"fp32", "bf16"} <= {r.precision for r in results}:
        fp32, bf16 = by[("fp32", "sn")], by[("bf16", "sn")]
        lines.append(f"bf16 / fp32 speed (sn, 4D+1G iteration): "
                     f"{bf16.iteration_images_per_second / fp32.iteration_images_per_second:.3f}×")
    return "\n".join(lines)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def parse_args() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=50, help="real images per D step and fakes per G step (recipe: 50)")
    p.add_argument("--ch", type=int, default=64, help="base width of both networks (recipe: 64)")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=3, help="timed D and G steps per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant before them")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def main() -> None:
    """Measure every requested precision, print the table and ratios, and write the JSON if asked."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    registry = make_registry(gancore_biggan, gancore_sn)
    results: list[Result] = []
    shares: list[HookedShare] = []
    for precision in args.precision:
        found, share = measure(precision, args, registry)
        results += found
        shares.append(share)
        print(f"{precision}: done", flush=True)
    print(f"\n{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, ch {args.ch}, "
          f"batch {args.batch}\ncommand: {' '.join(sys.argv)}\n")
    print(table(results, shares))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        payload = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                   "command": sys.argv, "config": config,
                   "results": [{**asdict(r), "d_images_per_second": r.d_images_per_second,
                                "g_images_per_second": r.g_images_per_second,
                                "iteration_images_per_second": r.iteration_images_per_second} for r in results],
                   "sn_forward_shares": [asdict(s) for s in shares]}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
