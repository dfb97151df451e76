"""The R3GAN loss study (Huang et al. 2024, "The GAN is dead; long live the GAN!", §2 and App. E) on 2-D data.

What: on the 25-Gaussian grid with the MLP networks of ``recipes/toy_25gaussians.yaml``, train five
configurations (loss + regularizers, everything else from the recipe) over several seeds:

    rpgan-r1-r2   RpGAN + R1 + R2, γ 0.3 each (the recipe itself)
    rpgan-r1      RpGAN + R1, γ 0.3
    rpgan-r1-g10  RpGAN + R1, γ 10
    ns-r1         non-saturating GAN + R1, γ 0.3
    ns-r1-r2      non-saturating GAN + R1 + R2, γ 0.3 each

Why: the paper reports that RpGAN + R1 + R2 covers every mode; that RpGAN + R1 alone diverges, D's
gradient norm on fakes exploding as it does, whatever γ (0.1 to 100); that GAN + R1 fails too; and
that GAN + R1 + R2 drops modes (693 of 1000 on StackedMNIST). This script checks each claim on the toy.

How: the loop is the Trainer's own (its phase methods, in the order of ``Trainer.run``), so that the
losses and penalties are gancore's. Every ``train.log_every_kimg`` of the recipe (10 kimg) it records the
mean losses and logits since the last record, and the mean per-sample ‖∇ₓD(x)‖ on a fresh batch of reals
and of G's fakes; every ``--every-kimg`` and at the end, ``mixture_modes`` on G's EMA. A run stops early
when any recorded value is non-finite (diverged). Each run writes ``OUT/<config>-seed<k>.json`` (after
every measurement, so a study can be reported on while it runs) and ``OUT/<config>-seed<k>/`` (the
ScalarLog: log.jsonl and TensorBoard events). Runs are separate processes with one thread each.

Run the whole study (16 cores), then print its tables again at any time:

    OMP_NUM_THREADS=1 python benchmarks/loss_study.py --seeds 0 1 2 --kimg 1000 --every-kimg 100 \
        --jobs 16 --out runs/loss_study
    python benchmarks/loss_study.py --report runs/loss_study
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancore.build import build
from gancore.builtin.metrics.mixture import MixtureModes
from gancore.data import Batches, to_model_space
from gancore.evaluation import Evaluation
from gancore.recipe import read_yaml, validate
from gancore.registry import default_registry
from gancore.training import Trainer, TrainingStopped

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "toy_25gaussians.yaml"
GAMMA = 0.3
"""The recipe's γ for R1 and R2."""
PROBE_SIZE = 1024
"""Reals and fakes in each measurement of D's input gradients."""
METRIC_SAMPLES = 10_000


@dataclass(frozen=True)
class Config:
    """A loss and its regularizers with their γ; everything else comes from the recipe."""

    loss: str
    gammas: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        """Readable name, e.g. ``rpgan + r1 (γ 0.3) + r2 (γ 0.3)``."""
        return " + ".join([self.loss] + [f"{name} (γ {gamma:g})" for name, gamma in self.gammas])


CONFIGS = {
    "rpgan-r1-r2": Config("rpgan", (("r1", GAMMA), ("r2", GAMMA))),
    "rpgan-r1": Config("rpgan", (("r1", GAMMA),)),
    "rpgan-r1-g10": Config("rpgan", (("r1", 10.0),)),
    "ns-r1": Config("nonsaturating", (("r1", GAMMA),)),
    "ns-r1-r2": Config("nonsaturating", (("r1", GAMMA), ("r2", GAMMA))),
}


# -- one run ---------------------------------------------------------------------------------


def make_trainer(config: Config, seed: int, kimg: float, log_dir: Path) -> Trainer:
    """The recipe with this configuration's loss and regularizers, on the CPU, under ``seed``."""
    raw = read_yaml(RECIPE)
    raw["loss"] = {"name": config.loss}
    raw["regularizers"] = [{"name": name, "params": {"gamma": gamma}} for name, gamma in config.gammas]
    raw["train"].update(device="cpu", total_kimg=kimg)
    raw["seed"] = seed
    registry = default_registry()
    recipe = validate(raw, registry, str(RECIPE))
    return Trainer(recipe, build(recipe, registry), log_dir, raw)


def train_step(trainer: Trainer, batches: Batches) -> None:
    """One iteration of ``Trainer.run``: schedules, D's steps, G's step (with its own reals if needed), EMA."""
    trainer.follow_schedules()
    for _ in range(trainer.cfg.d_steps_per_g_step):
        trainer.discriminator_phase(*batches.next())
    needs_real = trainer.conditional or trainer.parts.loss.relativistic
    trainer.generator_phase(*(batches.next() if needs_real else (None, None)))
    trainer.update_ema()


def mean_input_gradient_norm(trainer: Trainer, x: Tensor) -> float:
    """Mean over samples of ‖∇ₓD(x)‖₂, D as training uses it (unconditional data)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(trainer.critic(x, None).sum(), x)
    return float(torch.linalg.vector_norm(grad.flatten(1), dim=1).mean())


def gradient_norms(trainer: Trainer, rng: torch.Generator) -> dict[str, float]:
    """Mean ‖∇ₓD‖ on a fresh batch of reals and on as many fakes of G (not its EMA: the G that D faces)."""
    data = trainer.parts.dataset
    index = torch.randint(len(data), (PROBE_SIZE,), generator=rng).tolist()
    real = to_model_space(torch.stack([torch.as_tensor(data[i][0]) for i in index])).to(trainer.device)
    with torch.no_grad():
        fake = trainer.G(trainer.G.sample_z(PROBE_SIZE, trainer.device, rng), None)
    return {"Grad/real": mean_input_gradient_norm(trainer, real), "Grad/fake": mean_input_gradient_norm(trainer, fake)}


def mixture_metrics(trainer: Trainer) -> dict[str, float]:
    """``mixture_modes`` on G's EMA, sampled as the Trainer samples it for its metrics."""
    evaluation = Evaluation(trainer.G_ema, trainer.parts.dataset, seed=trainer.recipe.seed, progress=False)
    results = MixtureModes(num_samples=METRIC_SAMPLES).compute(evaluation)
    return {f"Metrics/{name}": float(value) for name, value in results.items()}


def crossed(nimg: int, before: int, every_kimg: float) -> bool:
    """Whether the images shown went past a multiple of ``every_kimg`` between ``before`` and ``nimg``."""
    every = every_kimg * 1000
    return int(nimg // every) > int(before // every)


def run_one(key: str, seed: int, kimg: float, every_kimg: float, out: Path) -> Path:
    """Train one configuration under one seed, writing its JSON after each measurement; returns that file."""
    torch.set_num_threads(1)
    name = f"{key}-seed{seed}"
    log_dir = out / name
    log_dir.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(CONFIGS[key], seed, kimg, log_dir)
    log = trainer.log
    batches = Batches(trainer.parts.dataset, trainer.cfg.batch_size, trainer.world, seed, 0, trainer.conditional)
    probe_rng = torch.Generator().manual_seed(seed + 4)  # apart from the Trainer's streams (seed .. seed + 3)
    result: dict[str, Any] = {"config": key, "label": CONFIGS[key].label, "seed": seed, "total_kimg": kimg,
                              "every_kimg": every_kimg, "diverged_kimg": None, "finished": False, "points": []}
    total_nimg, log_every = int(kimg * 1000), trainer.cfg.log_every_kimg
    start = time.perf_counter()
    while trainer.nimg < total_nimg:
        before = trainer.nimg
        try:
            train_step(trainer, batches)
            stopped = False
        except TrainingStopped:  # train.max_bad_steps non-finite steps in a row: their NaNs are in the log
            stopped = True
        done = trainer.nimg >= total_nimg
        measure = done or stopped or crossed(trainer.nimg, before, every_kimg)
        if not (measure or crossed(trainer.nimg, before, log_every)):
            continue
        point = {"kimg": trainer.kimg, **log.write(trainer.kimg, gradient_norms(trainer, probe_rng))}
        diverged = not all(math.isfinite(v) for v in point.values())
        if measure or diverged:
            metrics = mixture_metrics(trainer)
            log.record(trainer.kimg, metrics)
            point.update(metrics)
            result["seconds"] = time.perf_counter() - start
            print(f"[{name}] {progress_line(point)} ({result['seconds']:.0f} s)", flush=True)
        result["points"].append(point)
        if diverged:
            result["diverged_kimg"] = trainer.kimg
            break
        if measure:
            write_json(out / f"{name}.json", result)
    log.close()
    result.update(finished=True, seconds=time.perf_counter() - start)
    return write_json(out / f"{name}.json", result)


def progress_line(point: dict[str, float]) -> str:
    """One measurement point in a line."""
    return (f"{point['kimg']:.0f} kimg: modes {point['Metrics/modes']:.0f}, HQ {point['Metrics/high_quality']:.3f}, "
            f"KL {point['Metrics/reverse_kl']:.3f}, |∇D(fake)| {point['Grad/fake']:.3g}, "
            f"|∇D(real)| {point['Grad/real']:.3g}")


def write_json(path: Path, result: dict[str, Any]) -> Path:
    """Write atomically, so that a report taken meanwhile never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return path


# -- the study -------------------------------------------------------------------------------


def run_study(keys: list[str], seeds: list[int], kimg: float, every_kimg: float, jobs: int, out: Path) -> int:
    """Every (configuration, seed) in its own single-threaded process, ``jobs`` at a time; returns the failures."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"  # the spawned workers inherit it before they import torch
    failures = 0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(run_one, key, seed, kimg, every_kimg, out): f"{key}-seed{seed}"
                   for key in keys for seed in seeds}
        for future in as_completed(futures):
            try:
                print(f"[{futures[future]}] done: {future.result()}", flush=True)
            except Exception as exc:  # noqa: BLE001 - one failed run must not stop the others
                failures += 1
                print(f"[{futures[future]}] failed: {exc!r}", file=sys.stderr, flush=True)
    return failures


# -- the report ------------------------------------------------------------------------------


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every run's JSON in ``out``, in the order of CONFIGS, then by seed."""
    order = {key: i for i, key in enumerate(CONFIGS)}
    results = [json.loads(p.read_text()) for p in out.glob("*.json")]
    return sorted(results, key=lambda r: (order.get(r["config"], len(order)), r["seed"]))


def fmt(value: float | None, spec: str = ".3g") -> str:
    """A number for the tables; — when absent."""
    return "—" if value is None else format(value, spec)


def status(result: dict[str, Any]) -> str:
    """Diverged (where), still running/interrupted, or no."""
    if result["diverged_kimg"] is not None:
        return f"**yes**, at {result['diverged_kimg']:.0f} kimg"
    return "no" if result["finished"] else "unfinished"


def summary_table(results: list[dict[str, Any]]) -> list[str]:
    """One row per configuration × seed: final metrics, D's gradient norms, divergence."""
    header = ("| config | seed | kimg | modes | HQ | reverse KL | max ‖∇D(fake)‖ | final ‖∇D(fake)‖ "
              "| final ‖∇D(real)‖ | diverged |")
    rows = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        last = r["points"][-1]
        fake_norms = [p["Grad/fake"] for p in r["points"] if math.isfinite(p["Grad/fake"])]
        # the reverse KL is over high-quality samples only: undefined when there are none
        kl = last["Metrics/reverse_kl"] if last["Metrics/high_quality"] > 0 else None
        rows.append(f"| {r['label']} | {r['seed']} | {last['kimg']:.0f} | {last['Metrics/modes']:.0f} "
                    f"| {last['Metrics/high_quality']:.3f} | {fmt(kl, '.3f')} | {fmt(max(fake_norms, default=None))} "
                    f"| {fmt(last['Grad/fake'])} | {fmt(last['Grad/real'])} | {status(r)} |")
    return rows


def measurements(result: dict[str, Any]) -> dict[int, dict[str, float]]:
    """A run's scheduled measurement points by rounded kimg (not the one where it diverged)."""
    return {round(p["kimg"]): p for p in result["points"]
            if "Metrics/modes" in p and p["kimg"] != result["diverged_kimg"]}


def columns(results: list[dict[str, Any]], most: int = 10) -> list[int]:
    """Up to ``most`` measurement points (rounded kimg), evenly spread and including the last."""
    ticks = sorted({tick for r in results for tick in measurements(r)})
    if len(ticks) <= most:
        return ticks
    step = (len(ticks) - 1) / (most - 1)
    return [ticks[round(i * step)] for i in range(most)]


def over_training_table(results: list[dict[str, Any]], cell: Callable[[dict[str, float]], str]) -> list[str]:
    """One row per configuration × seed, one column per chosen measurement point, ``cell(point)`` in each."""
    ticks = columns(results)
    rows = ["| config | seed | " + " | ".join(f"{t} kimg" for t in ticks) + " |",
            "|---|---|" + "---|" * len(ticks)]
    for r in results:
        by_tick = measurements(r)
        cells = [cell(by_tick[t]) if t in by_tick else "—" for t in ticks]
        rows.append(f"| {r['label']} | {r['seed']} | " + " | ".join(cells) + " |")
    return rows


def modes_cell(point: dict[str, float]) -> str:
    """Modes / high-quality share."""
    return f"{point['Metrics/modes']:.0f} / {point['Metrics/high_quality']:.2f}"


def norms_cell(point: dict[str, float]) -> str:
    """Mean ‖∇ₓD‖ on fakes / on reals."""
    return f"{fmt(point['Grad/fake'])} / {fmt(point['Grad/real'])}"


def report(out: Path) -> str:
    """The study's markdown tables."""
    results = [r for r in load_results(out) if r["points"]]
    if not results:
        return f"no measured runs in {out}"
    legend = (f"kimg: where the run stopped. Modes: with ≥ 1% of {METRIC_SAMPLES} samples of G's EMA within 3σ; "
              "HQ: share of samples within 3σ of a centre; reverse KL over high-quality samples (— when there are "
              f"none). ‖∇ₓD‖: per-sample L2 norm, mean over {PROBE_SIZE} reals or fakes of G; the max is over every "
              "log point (finite values). Diverged: a non-finite loss, logit, penalty or gradient norm at a log point; "
              "the run stopped there.")
    lines = [f"## Loss study on the 25-Gaussian grid ({out})", "", *summary_table(results), "",
             "Modes / high-quality share over training:", "", *over_training_table(results, modes_cell), "",
             "Mean ‖∇ₓD‖ on fakes / on reals over training:", "", *over_training_table(results, norms_cell), "",
             legend]
    return "\n".join(lines)


def main() -> None:
    """Run the configurations asked for and print the report, or only print a report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS), metavar="KEY",
                        help=f"configurations to run (default: all): {', '.join(CONFIGS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--kimg", type=float, default=1000, help="run length in thousands of real images")
    parser.add_argument("--every-kimg", type=float, default=100, help="mixture_modes every this many kimg (≥ 1)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one process and one thread each")
    parser.add_argument("--out", type=Path, default=Path("runs/loss_study"), help="per-run JSON files and logs")
    parser.add_argument("--report", type=Path, metavar="DIR", help="only print the tables of the runs in DIR")
    args = parser.parse_args()
    if args.report is not None:
        print(report(args.report))
        return
    if args.every_kimg < 1:
        parser.error("--every-kimg must be at least 1 (the report's columns are whole kimg)")
    failures = run_study(args.configs, args.seeds, args.kimg, args.every_kimg, args.jobs, args.out)
    print(report(args.out))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
