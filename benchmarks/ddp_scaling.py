"""Data-parallel scaling on one machine: images per second of one recipe with 1 and 2 training processes.

What: the training throughput (images per second) of ``gancore run RECIPE --nproc N`` for each N of ``--nproc``
(default 1 and 2), at the same global batch (``--batch``, split evenly over the processes), as ``gancore`` itself
logs it: ``Progress/img_per_s`` of ``log.jsonl`` is the images trained since the previous log line over the wall
time since then, ``Timing/data_wait_share`` the share of that time spent blocked on the next batch. The default
recipe is ``recipes/quickstart.yaml`` (a small R3GAN on stacked 8×8 digits, RpGAN + R1 + R2), a full step each
(D's phase, G's phase, G's EMA); with several processes each averages its gradients with the others' (gloo on the
CPU, NCCL on GPUs) in every phase.

Fairness on a CPU: each configuration gets the same cores. ``OMP_NUM_THREADS`` is set to ``--threads-total`` // N
for every process (default: all CPUs), so on a 2-core machine 1 process with 2 threads runs against 2 processes
with 1 thread each.

How: each configuration is one subprocess ``python -m gancore run RECIPE --nproc N --out TMP -o ...`` that trains
``--kimg`` kimg and logs every ``--log-every`` kimg; samples and checkpoints are pushed past the end (written only
once, after the last log line). The first ``--warmup`` log intervals are dropped as warm-up (start-up, first
allocations, the loader's first batches); a run's figure is the median over its remaining intervals. With
``--repeats`` R the configurations are run in turn R times (1, 2, 1, 2, ...) and the table shows the median run
(and the range). The ratio is against 1 process measured in the same invocation. The runs' warnings (lines of
their output that mention one) are printed. Run:

    python benchmarks/ddp_scaling.py                                   # this CPU: 1 process × 2 threads, 2 × 1
    python benchmarks/ddp_scaling.py --repeats 3 --json runs/ddp_scaling.json
    python benchmarks/ddp_scaling.py --device cuda --kimg 200 --log-every 10   # 2 processes need 2 GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
NEVER_KIMG = 1e9
"""Sample and checkpoint intervals past any run's end: only the final ones are written."""
STOP_GRACE_SECONDS = 60
"""How long an interrupted run may take to stop after SIGTERM before it is killed."""


@dataclass
class Run:
    """One training run of one configuration."""

    nproc: int
    threads_per_process: int
    repeat: int
    img_per_s: float
    data_wait_share: float
    interval_img_per_s: list[float]
    interval_data_wait_share: list[float]
    wall_s: float
    warnings: list[str]


@dataclass
class Summary:
    """The runs of one configuration: median run, range, and ratio against 1 process."""

    nproc: int
    threads_per_process: int
    batch_per_process: int
    runs: int
    img_per_s: float
    img_per_s_min: float
    img_per_s_max: float
    vs_one_process: float | None
    data_wait_share: float


def command(args: argparse.Namespace, nproc: int, out: Path) -> list[str]:
    """The ``gancore run`` command line of one configuration."""
    overrides = {
        "train.total_kimg": args.kimg, "train.log_every_kimg": args.log_every, "train.batch_size": args.batch,
        "train.sample_every_kimg": NEVER_KIMG, "train.checkpoint_every_kimg": NEVER_KIMG,
        "train.device": args.device,
    }
    flags = [part for key, value in overrides.items() for part in ("-o", f"{key}={value}")]
    return [sys.executable, "-m", "gancore", "run", str(args.recipe), "--nproc", str(nproc), "--out", str(out),
            *flags]


def warning_lines(output: str) -> list[str]:
    """The distinct lines of a run's output that mention a warning (progress-bar redraws split on carriage returns)."""
    lines = (line.strip() for line in output.replace("\r", "\n").splitlines())
    return list(dict.fromkeys(line for line in lines if "warn" in line.lower()))


def train(cmd: list[str], env: dict[str, str], log_path: Path) -> float:
    """Run one training subprocess with its output in ``log_path``; its wall seconds. Stops it if interrupted."""
    start = time.perf_counter()
    with log_path.open("w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every training process
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            raise
    if code != 0:
        tail = log_path.read_text()[-3000:]
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {code}:\n{tail}")
    return time.perf_counter() - start


def measure(args: argparse.Namespace, nproc: int, repeat: int, tmp: Path) -> Run:
    """Train one configuration and read its throughput and data-wait share from ``log.jsonl``."""
    threads = max(1, args.threads_total // nproc)
    out = tmp / f"nproc{nproc}-repeat{repeat}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    output = tmp / f"nproc{nproc}-repeat{repeat}.txt"
    wall = train(command(args, nproc, out), env, output)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    ticks = [line for line in lines if "Progress/img_per_s" in line][args.warmup:]
    if not ticks:
        raise SystemExit(f"{out / 'log.jsonl'}: no log interval after the {args.warmup} warm-up ones")
    speeds = [tick["Progress/img_per_s"] for tick in ticks]
    waits = [tick["Timing/data_wait_share"] for tick in ticks]
    return Run(nproc=nproc, threads_per_process=threads, repeat=repeat, img_per_s=statistics.median(speeds),
               data_wait_share=statistics.median(waits), interval_img_per_s=speeds, interval_data_wait_share=waits,
               wall_s=wall, warnings=warning_lines(output.read_text()))


def summarise(runs: list[Run], args: argparse.Namespace) -> list[Summary]:
    """Per configuration: the median run's img/s, the range, the ratio against 1 process, the median data wait."""
    by_nproc = {n: [r for r in runs if r.nproc == n] for n in args.nproc}
    medians = {n: statistics.median(r.img_per_s for r in rs) for n, rs in by_nproc.items()}
    return [Summary(nproc=n, threads_per_process=rs[0].threads_per_process, batch_per_process=args.batch // n,
                    runs=len(rs), img_per_s=medians[n], img_per_s_min=min(r.img_per_s for r in rs),
                    img_per_s_max=max(r.img_per_s for r in rs),
                    vs_one_process=medians[n] / medians[1] if 1 in medians else None,
                    data_wait_share=statistics.median(r.data_wait_share for r in rs))
            for n, rs in by_nproc.items()]


def table(summaries: list[Summary]) -> str:
    """The summaries as a markdown table."""
    lines = ["| processes | threads each | batch per process | img/s | vs 1 process | data-wait share | runs |",
             "|---|---|---|---|---|---|---|"]
    for s in summaries:
        speed = f"{s.img_per_s:.0f}" + (f" ({s.img_per_s_min:.0f}–{s.img_per_s_max:.0f})" if s.runs > 1 else "")
        ratio = "—" if s.vs_one_process is None else f"{s.vs_one_process:.2f}×"
        lines.append(f"| {s.nproc} | {s.threads_per_process} | {s.batch_per_process} | {speed} | {ratio} | "
                     f"{s.data_wait_share:.3f} | {s.runs} |")
    return "\n".join(lines)


def machine(device: str) -> str:
    """The device (GPU name, or CPU model and count) and the software versions."""
    if device == "cuda":
        name = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    else:
        cpuinfo = Path("/proc/cpuinfo")
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), None) if cpuinfo.exists() else None
        name = f"{model or platform.processor() or 'CPU'}, {os.cpu_count()} CPUs"
    return f"{name}; torch {torch.__version__}, Python {platform.python_version()}"


def parse_args() -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="recipe to train (default: quickstart)")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to measure")
    p.add_argument("--batch", type=int, default=64, help="global batch (train.batch_size), split over the processes")
    p.add_argument("--kimg", type=float, default=32, help="kimg trained per run (train.total_kimg)")
    p.add_argument("--log-every", type=float, default=2, help="kimg per log interval (train.log_every_kimg)")
    p.add_argument("--warmup", type=int, default=2, help="first log intervals of each run left out")
    p.add_argument("--threads-total", type=int, default=os.cpu_count() or 1,
                   help="OMP_NUM_THREADS summed over the processes (each gets threads-total // N)")
    p.add_argument("--repeats", type=int, default=1, help="runs of each configuration, taken in turn")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="train.device (cuda: one GPU a process)")
    p.add_argument("--json", type=Path, help="write the runs and the summary here")
    args = p.parse_args()
    if any(n < 1 for n in args.nproc):
        p.error("--nproc: process counts must be at least 1")
    args.nproc = sorted(set(args.nproc))
    if any(args.batch % n for n in args.nproc):
        p.error(f"--batch {args.batch} does not split evenly over {args.nproc} processes")
    if args.kimg / args.log_every < args.warmup + 1:
        p.error("--kimg / --log-every must leave at least one log interval after the --warmup ones")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no GPU is visible")
    return args


def main() -> None:
    """Run every configuration --repeats times in turn, print the runs and the table, write the JSON if asked."""
    args = parse_args()
    print(f"{machine(args.device)}\n{args.recipe}, global batch {args.batch}, {args.kimg:g} kimg per run, "
          f"log every {args.log_every:g} kimg, first {args.warmup} intervals dropped, "
          f"{args.threads_total} threads in all, device {args.device}\n", flush=True)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="ddp_scaling-") as tmp:
        for repeat in range(args.repeats):
            for nproc in args.nproc:
                run = measure(args, nproc, repeat, Path(tmp))
                runs.append(run)
                threads = run.threads_per_process
                print(f"{nproc} process{'es' if nproc > 1 else ''} × {threads} thread{'s' if threads > 1 else ''}, "
                      f"repeat {repeat}: {run.img_per_s:.0f} img/s (intervals "
                      f"{min(run.interval_img_per_s):.0f}–{max(run.interval_img_per_s):.0f}), data wait "
                      f"{run.data_wait_share:.3f}, {run.wall_s:.0f} s wall", flush=True)
                for line in run.warnings:
                    print(f"  run output: {line}")
    summaries = summarise(runs, args)
    print("\n" + table(summaries))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        payload = {"machine": machine(args.device), "config": config, "runs": [asdict(r) for r in runs],
                   "summary": [asdict(s) for s in summaries]}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
