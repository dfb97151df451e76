"""Data parallelism on CPU (gloo): two processes with a global batch B train what one process with B trains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from gancore import checkpoint as checkpoints
from gancore import cli
from gancore.batchnorm import CrossReplicaBatchNorm, cross_replica


def recipe(**train: Any) -> dict[str, Any]:
    """Conditional digits, G with BatchNorm (cross-replica), RpGAN + R1 + R2, EMA: every part data parallelism touches."""
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 16, "width": 64, "depth": 2, "channels": 1, "resolution": 8,
                                                 "num_classes": 10, "batchnorm": True}},
        "discriminator": {"name": "mlp", "params": {"width": 64, "depth": 2, "channels": 1, "resolution": 8,
                                                     "num_classes": 10}},
        "loss": {"name": "rpgan"},
        "regularizers": [{"name": "r1", "params": {"gamma": 1.0}}, {"name": "r2", "params": {"gamma": 1.0}}],
        "train": {"batch_size": 32, "total_kimg": 0.32, "log_every_kimg": 0.16, "sample_every_kimg": 100,
                  "checkpoint_every_kimg": 0.16, "num_samples": 10, "device": "cpu", "num_workers": 0,
                  "ema_half_life_kimg": 0.1, "g_optimizer": {"lr": 2e-3, "beta1": 0.5},
                  "d_optimizer": {"lr": 2e-3, "beta1": 0.5}, **train},
        "seed": 5,
    }


def run(raw: dict[str, Any], out: Path, nproc: int, *extra: str) -> dict[str, Any]:
    """Train ``raw`` with ``nproc`` processes (a real `gancore run --nproc` for more than one); its final state."""
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(raw))
    args = ["run", str(path), *(extra or ("--out", str(out)))]
    if nproc == 1:
        assert cli.main(args) == 0
    else:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "gancore", *args, "--nproc", str(nproc)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    run_dir = out if not extra else Path(extra[extra.index("--resume") + 1])
    return checkpoints.read(checkpoints.listed(run_dir)[0][1]).state


def largest(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_processes_train_the_same_networks_as_one(tmp_path: Path) -> None:
    one = run(recipe(), tmp_path / "one", 1)
    two = run(recipe(), tmp_path / "two", 2)
    start = run(recipe(total_kimg=0.032), tmp_path / "start", 1)  # one step: close to the initial networks
    half = run(recipe(batch_size=16, total_kimg=0.16), tmp_path / "half", 1)  # what one process alone would see
    for net in ("generator", "discriminator", "generator_ema"):
        gap = largest(one[net], two[net])
        moved = largest(one[net], start[net])
        # float sums in another order; Adam's 1/√v magnifies them where a gradient is near zero
        assert gap < 1e-4, (net, gap)
        assert moved > 300 * gap and moved > 0.01, (net, moved, gap)  # 9 Adam steps of lr 2e-3: up to 0.018
        assert largest(half[net], two[net]) > 100 * max(gap, 1e-7), net
    # BatchNorm's running statistics are those of the global batch on both counts
    assert largest({"m": one["generator"]["net.1.running_var"]}, {"m": two["generator"]["net.1.running_var"]}) < 1e-5
    assert one["progress"] == two["progress"] == {"nimg": 320, "last_advance": 32, "batches": 20, "g_steps": 10,
                                                  "d_steps": 10}
    assert len(two["rng"]["processes"]) == 2
    assert not torch.equal(two["rng"]["processes"][0]["cpu"], two["rng"]["processes"][1]["cpu"])


@pytest.mark.slow
def test_two_processes_resume_bit_for_bit_with_augmentation(tmp_path: Path) -> None:
    """Each process's own random stream (ADA's draws) is saved and restored with the rest."""
    raw = recipe(total_kimg=0.32)
    raw["augmenter"] = {"name": "ada", "params": {"p": 0.5, "preset": "bgc"}}
    whole = run(raw, tmp_path / "whole", 2)
    first = dict(raw, train={**raw["train"], "total_kimg": 0.16})
    run(first, tmp_path / "parts", 2)
    resumed = run(raw, tmp_path / "again", 2, "--resume", str(tmp_path / "parts"))
    assert resumed["progress"]["nimg"] == whole["progress"]["nimg"] == 320
    for net in ("generator", "discriminator", "generator_ema", "augmenter"):
        for k, v in whole[net].items():
            torch.testing.assert_close(resumed[net][k], v, rtol=0, atol=0, equal_nan=True, msg=f"{net}.{k}")


def test_an_uneven_split_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(batch_size=33)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "gancore", "run", str(path), "--nproc", "2", "--out",
                           str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("train.batch_size = 33: cannot be split evenly over 2 processes; use a multiple of 2") == 1
    assert not (tmp_path / "o").exists()  # refused before a run directory was made


LEAVING = """
import os, sys
import torch
from gancore import distributed

def gloo_threads():
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{task}/comm").read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return [n for n in names if "gloo" in n]

distributed.join("cpu")
torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])  # imports torch._dynamo, as every trainer's optimiser does
assert gloo_threads(), "gloo runs no threads of its own: this test can see nothing"
distributed.leave()
assert not gloo_threads(), f"the process group outlived leave(): {gloo_threads()} still run"
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from Linux's /proc")
def test_leave_stops_gloo_before_the_interpreter_shuts_down(tmp_path: Path) -> None:
    """No gloo thread may live on into interpreter shutdown: one that does can abort the process at exit (SIGABRT,
    "terminate called without an active exception"), failing a run that finished. torch.distributed.nn binds the
    default group as an argument default when first imported, which torch._dynamo (hence torch.optim) does."""
    script = tmp_path / "leaving.py"
    script.write_text(LEAVING)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _batchnorm_worker(rank: int, rendezvous: Path, x: torch.Tensor, weight: torch.Tensor, out: dict[int, Any]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        bn = cross_replica(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))[0]
        assert isinstance(bn, CrossReplicaBatchNorm)
        share = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        y = bn(share)
        (y * weight[rank * 4:(rank + 1) * 4]).sum().backward()
        grads = torch.stack([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)  # what the trainer's gradient average does, before dividing
        out[rank] = {"y": y.detach(), "dx": share.grad, "dparams": grads, "mean": bn.running_mean.clone(),
                     "var": bn.running_var.clone()}
    finally:
        dist.destroy_process_group()


def test_cross_replica_batchnorm_equals_one_batchnorm_over_the_whole_batch(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    # channel 2 has mean 20 and deviation 0.2: E[x²] − E[x]² in float32 would lose its variance's digits
    x = torch.randn(8, 3, 5, 5, generator=g) * torch.tensor([1.0, 3.0, 0.2]).view(1, 3, 1, 1) + torch.tensor(
        [2.0, -1.0, 20.0]).view(1, 3, 1, 1)
    weight = torch.randn(8, 3, 5, 5, generator=g)
    results = mp.Manager().dict()
    mp.spawn(_batchnorm_worker, args=(tmp_path / "rendezvous", x, weight, results), nprocs=2)
    whole = torch.nn.BatchNorm2d(3)
    inputs = x.clone().requires_grad_(True)
    y = whole(inputs)
    (y * weight).sum().backward()
    torch.testing.assert_close(torch.cat([results[0]["y"], results[1]["y"]]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([results[0]["dx"], results[1]["dx"]]), inputs.grad, atol=1e-5, rtol=1e-4)
    for r in (0, 1):
        torch.testing.assert_close(results[r]["dparams"], torch.stack([whole.weight.grad, whole.bias.grad]),
                                   atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(results[r]["mean"], whole.running_mean)
        torch.testing.assert_close(results[r]["var"], whole.running_var)
    # with half the batch each, plain BatchNorm would differ: the test can tell
    half = torch.nn.BatchNorm2d(3)(x[:4])
    assert (half.detach() - y.detach()[:4]).abs().max() > 0.05


@pytest.mark.slow
def test_ctrl_c_stops_every_process_at_one_step_with_a_checkpoint(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches torchrun and both processes; they agree on the step and rank 0 writes."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(total_kimg=1000, checkpoint_every_kimg=0.32)))
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gancore", "run", str(path), "--nproc", "2", "--out",
                             str(run_dir)], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not checkpoints.listed(run_dir):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and err.count("stopped by SIGINT") == 1
    nimg, last = checkpoints.listed(run_dir)[0]
    assert nimg % 320 != 0 and f"checkpoint {last}; continue with gancore run {path} --resume {run_dir} --nproc 2" in err
    assert len(checkpoints.read(last).state["rng"]["processes"]) == 2


def test_eval_shares_the_embedding_out_and_gets_the_same_numbers(tmp_path: Path) -> None:
    """`gancore eval --nproc 2` of a run: each process embeds a share, the FD (in a small timm backbone) is unchanged."""
    import json

    import timm
    from safetensors.torch import save_file

    out = tmp_path / "run"
    run(recipe(total_kimg=0.064), out, 1)
    weights = tmp_path / "backbone.safetensors"
    torch.manual_seed(0)
    save_file(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), str(weights))
    args = ["eval", str(out), "--metric", "fd", "--backbone", "test_resnet", "--backbone-weights", str(weights),
            "--num-gen", "37", "--num-real", "50", "--batch", "8", "--device", "cpu"]  # 5 and 7 batches: uneven shares
    assert cli.main(args) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "gancore", *args, "--nproc", "2", "--no-cache"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert (one["processes"], two["processes"]) == (1, 2)
    assert two["results"]["fd"] == pytest.approx(one["results"]["fd"], rel=1e-9) and one["results"]["fd"] > 0
