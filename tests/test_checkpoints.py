"""Checkpoints: atomic writes, refusal of corrupted, foreign and unsafe files, exact resume, and faults."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor

from gancore import checkpoint as checkpoints
from gancore import cli
from gancore import recipe as recipes
from gancore.build import build
from gancore.data import Batches
from gancore.errors import GancoreError
from gancore.interfaces import PenaltyContext, Regularizer
from gancore.registry import default_registry
from gancore.training import Trainer, TrainingStopped


def digits(**train: Any) -> dict[str, Any]:
    """Conditional 8×8 digits with ADA (p = 0.5) and loader workers: every random stream a resume must restore."""
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 16, "width": 64, "depth": 2, "channels": 1,
                                                 "resolution": 8, "num_classes": 10}},
        "discriminator": {"name": "mlp", "params": {"width": 64, "depth": 2, "channels": 1, "resolution": 8,
                                                     "num_classes": 10}},
        "loss": {"name": "rpgan"},
        "regularizers": [{"name": "r1", "params": {"gamma": 0.1}}, {"name": "r2", "params": {"gamma": 0.1}}],
        "augmenter": {"name": "ada", "params": {"p": 0.5, "preset": "bgc"}},
        "train": {"batch_size": 32, "total_kimg": 1.024, "log_every_kimg": 0.256, "sample_every_kimg": 100,
                  "checkpoint_every_kimg": 0.256, "num_samples": 10, "device": "cpu", "num_workers": 2,
                  "ema_half_life_kimg": 0.5, **train},
        "seed": 3,
    }


def trainer(raw: dict[str, Any], out: Path) -> Trainer:
    registry = default_registry()
    recipe = recipes.validate(raw, registry)
    return Trainer(recipe, build(recipe, registry), out, raw)


def assert_same_state(a: dict[str, Any], b: dict[str, Any], path: str = "") -> None:
    """Bit-identical nested states (NaN where the other has NaN: ADA's r_t before it is first measured)."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=path)
    else:
        assert a == b, path


def networks(state: dict[str, Any]) -> dict[str, Any]:
    keys = ("generator", "generator_ema", "discriminator", "augmenter", "g_optimizer", "d_optimizer", "progress")
    return {k: state[k] for k in keys}


def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = trainer(digits(), tmp_path / "whole")
    whole.run()
    first = trainer(digits(total_kimg=0.512), tmp_path / "parts")
    first.run()
    assert first.nimg == 512
    found, refused = checkpoints.newest_good(tmp_path / "parts", digits())  # total_kimg may change on resume
    assert refused == [] and found.nimg == 512
    rest = trainer(digits(), tmp_path / "parts")
    rest.resume(found)
    rest.run()
    assert_same_state(networks(whole.state_dict()), networks(rest.state_dict()))
    untrained = trainer(digits(), tmp_path / "fresh")
    assert not torch.equal(untrained.G.net[0].weight, whole.G.net[0].weight)
    # the resumed run's log continues the first one's: every point once, in order
    logged = [json.loads(line)["kimg"] for line in (tmp_path / "parts" / "log.jsonl").read_text().splitlines()]
    assert logged == [0.256, 0.512, 0.768, 1.024]
    assert [n for n, _ in checkpoints.listed(tmp_path / "parts")] == [1024, 768, 512]  # keep_checkpoints: 3


def test_checkpoint_holds_every_part_of_the_state(tmp_path: Path) -> None:
    t = trainer(digits(total_kimg=0.256), tmp_path)
    t.run()
    found = checkpoints.read(checkpoints.listed(tmp_path)[0][1])
    state = found.state
    assert set(state) == {"generator", "generator_ema", "discriminator", "augmenter", "g_optimizer", "d_optimizer",
                          "loss_scale", "progress", "rng"}
    assert float(state["augmenter"]["p"]) == 0.5
    assert state["progress"] == {"nimg": 256, "last_advance": 32, "batches": 16, "g_steps": 8, "d_steps": 8}
    assert len(state["rng"]["processes"]) == 1 and state["rng"]["z"].dtype == torch.uint8
    assert found.recipe == digits(total_kimg=0.256)
    plain = torch.load(found.path, weights_only=True)  # opens with torch alone, nothing but tensors and values
    assert plain["format"] == checkpoints.FORMAT


def write(path: Path, nimg: int, recipe: dict[str, Any]) -> Path:
    state = {"w": torch.arange(6.0).view(2, 3) + nimg, "step": nimg}
    return checkpoints.save(path, nimg, state, recipe, keep=10)


def test_corrupted_newest_checkpoint_falls_back_to_the_newest_good_one(tmp_path: Path) -> None:
    recipe = digits()
    write(tmp_path, 100, recipe)
    middle = write(tmp_path, 200, recipe)
    newest = write(tmp_path, 300, recipe)
    data = bytearray(newest.read_bytes())
    index = data.index(struct.pack("<f", 304.0))  # a weight of the 300-image state
    data[index + 3] ^= 0x01  # one bit of its exponent
    newest.write_bytes(bytes(data))
    found, refused = checkpoints.newest_good(tmp_path, recipe)
    assert found.path == middle and torch.equal(found.state["w"], torch.arange(6.0).view(2, 3) + 200)
    assert refused == [f"{newest} is corrupted: its contents do not match the SHA-256 it was written with"]
    middle.write_bytes(middle.read_bytes()[:500])  # cut short, as by a crash without the atomic rename
    found, refused = checkpoints.newest_good(tmp_path, recipe)
    assert found.nimg == 100 and len(refused) == 2 and "cut short or corrupted" in refused[1]
    crashed = tmp_path / "checkpoints" / ".checkpoint-000000000250.pt.partial"  # a writer killed mid-write
    crashed.write_bytes(b"PK\x03\x04")
    assert checkpoints.newest_good(tmp_path, recipe)[0].nimg == 100  # never taken for a checkpoint
    write(tmp_path, 400, recipe)
    assert not crashed.exists()  # and cleared by the next write


def test_checkpoint_of_another_recipe_is_refused_with_the_keys_that_differ(tmp_path: Path) -> None:
    write(tmp_path, 100, digits())
    other = digits(batch_size=64)
    other["loss"] = {"name": "hinge"}
    with pytest.raises(checkpoints.CheckpointError) as info:
        checkpoints.newest_good(tmp_path, other)
    message = str(info.value)
    assert "belongs to another recipe" in message
    assert "loss.name: 'hinge' here vs 'rpgan' in the checkpoint" in message
    assert "train.batch_size: 64 here vs 32 in the checkpoint" in message
    longer = digits(total_kimg=50, checkpoint_every_kimg=5, num_workers=0)  # when it ends and how it loads: allowed
    assert checkpoints.newest_good(tmp_path, longer)[0].nimg == 100


class _Payload:
    """Unpickling this runs a command: what a malicious checkpoint could do with plain torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = checkpoints.path_for(tmp_path, 500)
    bad.parent.mkdir()
    torch.save({"format": checkpoints.FORMAT, "state": _Payload(marker)}, bad)
    good = write(tmp_path, 100, digits())
    found, refused = checkpoints.newest_good(tmp_path, digits())
    assert found.path == good
    assert "holds Python objects other than tensors and plain values" in refused[0]
    assert not marker.exists()
    with pytest.raises(checkpoints.CheckpointError, match="not a gancore checkpoint"):
        torch.save({"weights": torch.ones(2)}, bad)
        checkpoints.read(bad)
    assert pickle.dumps(1)  # the standard pickle module itself is untouched


def test_a_failed_write_leaves_earlier_checkpoints_and_no_partial_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    t = trainer(digits(total_kimg=0.064, num_workers=0), tmp_path)
    t.run()
    kept = checkpoints.listed(tmp_path)
    assert [n for n, _ in kept] == [64]

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoints.os, "fsync", disk_full)
    t.nimg = 96
    with pytest.raises(checkpoints.CheckpointError) as info:
        t.save_checkpoint()
    assert str(info.value) == (
        f"cannot write the checkpoint {checkpoints.path_for(tmp_path, 96)}: No space left on device; the newest "
        f"earlier checkpoint, {kept[0][1]}, is untouched. Free space or make {tmp_path} writable, then resume with "
        f"--resume {tmp_path}")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [kept[0][1].name]
    assert checkpoints.read(kept[0][1]).nimg == 64


def test_an_unwritable_run_directory_is_reported_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    t = trainer(digits(), blocker / "run")
    with pytest.raises(GancoreError, match=r"cannot write to the run directory .*/file/run: Not a directory; "
                                           r"choose another with --out"):
        t.run()
    assert t.nimg == 0


def test_a_run_directory_that_cannot_be_made_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(yaml.safe_dump(digits()))
    assert cli.main(["run", str(recipe), "--out", str(blocker / "run")]) == 2
    assert capsys.readouterr().err == (f"error: cannot make the run directory {blocker / 'run'}: Not a directory; "
                                       f"choose another with --out\n")


class NonFinite(Regularizer):
    """A penalty that is NaN on the D steps listed."""

    def __init__(self, bad_steps: set[int]) -> None:
        self.bad = bad_steps
        self.step = -1

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        self.step += 1
        zero = ctx.real_logits.sum() * 0
        return zero + float("nan") if self.step in self.bad else zero


def test_a_non_finite_step_changes_nothing_and_too_many_stop_the_run(tmp_path: Path) -> None:
    t = trainer(digits(max_bad_steps=3, num_workers=0, total_kimg=10), tmp_path)
    t.penalties["discriminator"] = [("Penalty/nan", NonFinite({1, 3, 4, 5}))]
    data = Batches(t.parts.dataset, 32, t.world, 0, 0, True)
    (tmp_path / "samples").mkdir(parents=True)
    assert t.discriminator_phase(*data.next())
    saved = t.save_checkpoint()
    before = {k: v.clone() for k, v in t.D.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in t.d_opt.state.values()]
    assert not t.discriminator_phase(*data.next())
    assert all(torch.equal(v, t.D.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, t.d_opt.state.values()))
    assert float(t.augmenter.p) == 0.5 and t.bad_steps == 1
    assert t.discriminator_phase(*data.next()) and t.bad_steps == 0  # a good step resets the count
    assert not t.discriminator_phase(*data.next())
    assert not t.discriminator_phase(*data.next())
    with pytest.raises(TrainingStopped) as info:
        t.discriminator_phase(*data.next())
    assert f"after 3 steps in a row with a non-finite loss or gradient (train.max_bad_steps); the last good " \
           f"checkpoint is {saved}" in str(info.value)
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["event"], e["network"], e["step"], e["in_a_row"]) for e in events] == [
        ("non_finite", "D", 1, 1), ("non_finite", "D", 3, 1), ("non_finite", "D", 4, 2), ("non_finite", "D", 5, 3)]


def _gancore(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gancore", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not checkpoints.listed(run):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_networks(tmp_path: Path) -> None:
    raw = digits(total_kimg=6.4, checkpoint_every_kimg=0.64, log_every_kimg=0.64, num_workers=0)
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    proc = _gancore("run", str(recipe), "--out", str(run), cwd=tmp_path)
    _wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoints.listed(run)[0][0]
    assert proc.returncode == -signal.SIGKILL and killed_at < 6400
    assert cli.main(["run", str(recipe), "--resume", str(run)]) == 0
    whole = trainer(raw, tmp_path / "whole")
    whole.run()
    resumed = checkpoints.read(checkpoints.listed(run)[0][1])
    assert resumed.nimg == 6400
    assert_same_state(networks(whole.state_dict()), networks(resumed.state))


@pytest.mark.parametrize("which", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_write_a_checkpoint_and_exit_cleanly(tmp_path: Path, which: signal.Signals) -> None:
    raw = digits(total_kimg=1000, checkpoint_every_kimg=0.32, num_workers=0)
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    proc = _gancore("run", str(recipe), "--out", str(run), cwd=tmp_path)
    _wait_for_checkpoint(run, proc)
    proc.send_signal(which)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + which, err
    assert "Traceback" not in err
    last = checkpoints.listed(run)[0]
    assert last[0] % 32 == 0 and last[0] % 320 != 0  # written on the signal, not on the schedule
    assert f"stopped by {which.name} at {last[0] / 1000:.3f} kimg; checkpoint {last[1]}; continue with gancore run " \
           f"{recipe} --resume {run}" in err
    assert checkpoints.read(last[1]).state["progress"]["nimg"] == last[0]
    assert not (run / "network-final.pt").exists() and not (run / "metrics.json").exists()


def test_resuming_a_finished_run_says_how_to_train_longer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "digits.yaml"
    recipe.write_text(yaml.safe_dump(digits(total_kimg=0.064, num_workers=0)))
    assert cli.main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert cli.main(["run", "--resume", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'run'} already reached train.total_kimg = 0.064 (0.064 kimg "
                                       f"trained); to train longer, resume with -o train.total_kimg=MORE\n")
    assert cli.main(["run", "--resume", str(tmp_path / "run"), "-o", "train.total_kimg=0.128"]) == 0
    assert checkpoints.listed(tmp_path / "run")[0][0] == 128
