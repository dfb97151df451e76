"""The ``gancore`` command: list, show, summary and run, each in a real process started in a temporary folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gancore import cli
from gancore.interfaces import KINDS
from gancore.recipe import read_yaml
from gancore.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "toy.yaml"
LOSSES = ["hinge", "least_squares", "nonsaturating", "rpgan", "wasserstein"]


def gancore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m gancore ARGS`` in ``cwd``; nothing may be written into the repository."""
    return subprocess.run([sys.executable, "-m", "gancore", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def no_traceback(result: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in result.stdout + result.stderr


# -- list and show -------------------------------------------------------------------------------


def test_list_shows_every_component_by_kind(tmp_path: Path) -> None:
    result = gancore("list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed: dict[str, list[str]] = {}
    kind = ""
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            assert line.endswith(":"), line
            kind = line[:-1]
            listed[kind] = []
        else:
            name, *description = line.split()
            assert description and description[-1].startswith("["), line  # description, then [plugin]
            listed[kind].append(name)
    registry = default_registry()
    assert list(listed) == [k for k in KINDS if registry.names(k)]  # kinds in interface order, empty ones left out
    assert listed == {k: registry.names(k) for k in listed}
    assert listed["loss"] == LOSSES
    assert {"r1", "r2", "wgan_gp", "dragan", "l2"} <= set(listed["regularizer"])
    assert "mlp" in listed["generator"] and "mlp" in listed["discriminator"]
    assert "mixture_modes" in listed["metric"]
    assert {"gaussians_grid", "digits"} <= set(listed["dataset"])


def test_list_one_kind(tmp_path: Path) -> None:
    result = gancore("list", "loss", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == LOSSES
    assert all(line.endswith("[gancore]") for line in lines)
    assert not any(line.endswith(":") for line in lines)  # no kind header when one kind is asked for
    hinge = lines[0]
    assert "Hinge loss" in hinge


def test_console_script_lists_a_kind(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "gancore"
    assert script.exists(), "the gancore console script is not installed next to this Python"
    result = subprocess.run([str(script), "list", "loss"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == LOSSES


def test_show_gives_description_and_typed_parameters_with_defaults(tmp_path: Path) -> None:
    result = gancore("show", "regularizer", "r1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "regularizer r1  (plugin gancore)"
    assert lines[1].strip().startswith("R1 penalty (Mescheder et al.)")
    assert lines[2] == "  parameters:"
    gamma = [line for line in lines if line.strip().startswith("gamma:")]
    assert len(gamma) == 1
    assert re.match(r"^    gamma: number \| Schedule \(default 1\.0, ≥ 0\)  γ, the penalty's weight", gamma[0]), gamma[0]


def test_show_lists_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "generator", "mlp"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "    z_dim: integer (default 64, > 0)" in lines
    assert "    depth: integer (default 3, ≥ 1)  hidden layers" in lines


def test_show_unknown_component(tmp_path: Path) -> None:
    result = gancore("show", "loss", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert no_traceback(result)
    assert result.stderr.startswith("error: no loss named 'nope' is installed; installed ")
    assert result.stderr.endswith(": " + ", ".join(LOSSES) + "\n")
    assert "did you mean" not in result.stderr


def test_show_unknown_component_suggests_close_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["show", "loss", "hing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no loss named 'hing' is installed (did you mean 'hinge'?); installed ")
    assert cli.main(["show", "regularizer", "wgan-gp"]) == 2
    assert "no regularizer named 'wgan-gp' is installed (did you mean 'wgan_gp'?)" in capsys.readouterr().err


# -- summary -------------------------------------------------------------------------------------


def linear_params(sizes: list[tuple[int, int]]) -> int:
    """Weights and biases of Linear layers (in, out)."""
    return sum(i * o + o for i, o in sizes)


def linear_flops(sizes: list[tuple[int, int]]) -> int:
    """A Linear layer is one multiply-add per weight per sample: 2·in·out FLOPs."""
    return sum(2 * i * o for i, o in sizes)


# tests/toy.yaml: G z 64 → 256 → 256 → 256 → 2; D 2 → 256 → 256 → 256 → 1 (its head)
G_LAYERS = [(64, 256), (256, 256), (256, 256), (256, 2)]
D_LAYERS = [(2, 256), (256, 256), (256, 256), (256, 1)]


def test_layer_counts_by_hand() -> None:
    assert linear_params(G_LAYERS) == 64 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 2 + 2 == 148_738
    assert linear_params(D_LAYERS) == 2 * 256 + 256 + 2 * (256 * 256 + 256) + 256 + 1 == 132_609
    assert linear_flops(G_LAYERS) == 295_936
    assert linear_flops(D_LAYERS) == 263_680


def test_summary_json_counts_parameters_and_flops(tmp_path: Path) -> None:
    result = gancore("summary", str(TOY), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info: dict[str, dict[str, Any]] = json.loads(result.stdout)
    assert set(info) == {"generator", "discriminator"}
    g, d = info["generator"], info["discriminator"]
    assert g["params"] == linear_params(G_LAYERS)
    assert d["params"] == linear_params(D_LAYERS)
    assert g["flops_per_image"] == linear_flops(G_LAYERS)
    assert d["flops_per_image"] == linear_flops(D_LAYERS)
    assert all(isinstance(row[k], int) for row in (g, d) for k in ("params", "flops_per_image"))
    assert g["output_shape"] == [2]
    assert list(tmp_path.iterdir()) == []


def test_summary_follows_overrides_and_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["summary", str(TOY), "-o", "generator.params.width=32", "-o", "generator.params.depth=1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    g_params = linear_params([(64, 32), (32, 2)])
    assert lines[0].startswith("generator") and f"params {g_params:>12,}" in lines[0]
    assert f"FLOPs/image {linear_flops([(64, 32), (32, 2)]):>14,}" in lines[0]
    assert lines[1].startswith("discriminator") and f"params {linear_params(D_LAYERS):>12,}" in lines[1]
    assert lines[0].endswith("output (2,)")


# -- run -----------------------------------------------------------------------------------------


def test_run_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out" / "toy"  # parents are created
    result = gancore("run", str(TOY), "-o", "train.total_kimg=1", "-o", "train.log_every_kimg=0.5",
                     "-o", "train.num_samples=256", "--out", "out/toy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert no_traceback(result)
    assert "-> out/toy" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else, no runs/

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    scalars = [entry for entry in log if "Loss/D" in entry]
    assert [entry["kimg"] for entry in scalars] == [0.512, 1.024]  # every 0.5 kimg at 256 a batch, and the end
    assert all({"Loss/G", "Penalty/r1", "Penalty/r2", "Progress/lr_G"} <= set(e) for e in scalars)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kimg"] == pytest.approx(1.024)
    assert {"mixture_modes/modes", "mixture_modes/high_quality", "mixture_modes/reverse_kl"} <= set(metrics)
    assert 0 <= metrics["mixture_modes/modes"] <= 25

    samples = sorted((out / "samples").glob("*.png"))
    assert samples
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in samples)

    saved = torch.load(out / "network-final.pt", weights_only=True)
    assert {"generator", "generator_ema", "discriminator"} <= set(saved)
    assert saved["generator"]["net.0.weight"].shape == (256, 64)

    written = yaml.safe_load((out / "recipe.yaml").read_text())
    expected = read_yaml(TOY)
    expected["train"].update(total_kimg=1, log_every_kimg=0.5, num_samples=256)
    assert written == expected


def test_run_without_out_takes_the_next_free_runs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (the process itself is tested above): one D step, into runs/<recipe stem>-<n>."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "toy-0").mkdir(parents=True)  # taken, though empty
    code = cli.main(["run", str(TOY), "-o", "train.total_kimg=0.25", "-o", "train.num_samples=16",
                     "-o", "metrics=[]"])
    assert code == 0, capsys.readouterr().err[-3000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["toy-0", "toy-1"]
    run_dir = tmp_path / "runs" / "toy-1"
    assert (run_dir / "network-final.pt").is_file()
    assert yaml.safe_load((run_dir / "recipe.yaml").read_text())["metrics"] == []
    assert json.loads((run_dir / "metrics.json").read_text()) == {"kimg": 0.256}
    assert list((tmp_path / "runs" / "toy-0").iterdir()) == []


def test_run_with_a_bad_override_value(tmp_path: Path) -> None:
    result = gancore("run", str(TOY), "-o", "train.batch_size=zero", "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (f"error: {TOY}: train.batch_size = \"zero\": should be a valid integer, "
                             f"unable to parse string as an integer\n")
    assert no_traceback(result)
    assert list(tmp_path.iterdir()) == []


def test_run_with_a_bad_override_path(tmp_path: Path) -> None:
    result = gancore("run", str(TOY), "-o", "regularizers[9].params.gamma=1", "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: override 'regularizers[9].params.gamma=1': regularizers[9] does not exist\n"
    assert no_traceback(result)
    assert list(tmp_path.iterdir()) == []


def test_validate_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(TOY), "-o", "train.batch_size=64", "-o", "loss.name=hinge"]) == 0
    assert capsys.readouterr().out == f"{TOY}: ok\n"
    assert cli.main(["validate", str(TOY), "-o", "regularizers.1.params.gamma=-1"]) == 2
    assert capsys.readouterr().err == (f"error: {TOY}: regularizers[1].params.gamma = -1: should be greater than or "
                                       f"equal to 0 (start and end of a schedule alike)\n")


def test_run_refuses_an_out_directory_holding_files(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("earlier run")
    result = gancore("run", str(TOY), "-o", "train.total_kimg=0.25", "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "error: --out out already holds files; choose an empty or new directory\n"
    assert no_traceback(result)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
