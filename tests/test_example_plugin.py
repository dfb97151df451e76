"""The example plugin as a user meets it: built as a wheel, installed, found through its entry point.

The wheel is built offline from a copy of ``examples/gancore-plugin-example`` with the venv's own
setuptools (``pip wheel --no-build-isolation --no-index``; torch requires setuptools >= 77, which builds
wheels without the ``wheel`` package and reads the SPDX ``license`` string), installed with
``pip --target`` into a throw-away directory, and every check runs in a subprocess with only that
directory on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.xdist_group("example_plugin")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gancore-plugin-example"
GANCORE = Path(sys.executable).with_name("gancore")

RECIPE = """\
data: {name: gaussians_grid, params: {size: 4096}}
generator: {name: mlp, params: {z_dim: 8, width: 32, depth: 2}}
discriminator: {name: mlp, params: {width: 32, depth: 2}}
loss: {name: relativistic_hinge, params: {margin: 0.5}}
augmenter: {name: gaussian_noise, params: {sigma: 0.3, p: 0.5, anneal_kimg: 1}}
train:
  batch_size: 64
  total_kimg: 2
  log_every_kimg: 0.5
  sample_every_kimg: 2
  num_samples: 64
  device: cpu
seed: 0
"""


@dataclass(frozen=True)
class Installed:
    """The built wheel, the directory it was installed into, and the copy of the sources it came from."""

    wheel: Path
    site: Path
    source: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the sources' copy, with only the installed plugin added to the path (no outer pytest
        settings); the example's pyproject.toml then configures pytest, and its ``src/`` is not importable."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env["OMP_NUM_THREADS"] = "1"  # several run at once: no thread oversubscription
        env["PYTHONPATH"] = str(self.site)
        return subprocess.run(args, cwd=self.source, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the example's wheel offline and install it into a fresh target directory."""
    assert importlib.util.find_spec("gancore_plugin_example") is None, "the example must not be installed here"
    root = tmp_path_factory.mktemp("example_plugin")
    source = root / "source"
    # build from a copy: an in-tree build would leave build/ and *.egg-info in the repository
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                   ".pytest_cache"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(root / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("gancore_plugin_example-*.whl")
    site = root / "site"
    done = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (root / "tiny.yaml").write_text(RECIPE)
    return Installed(wheel, site, source)


@pytest.fixture(scope="module")
def commands(installed: Installed) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every command the tests check, started at once: each spends seconds importing torch, so they overlap."""
    root = installed.site.parent
    todo = {
        "run": (str(GANCORE), "run", str(root / "tiny.yaml"), "--out", str(root / "run")),
        "pytest": (sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"),
        "plugins": (str(GANCORE), "plugins"),
        "list": (str(GANCORE), "list", "loss"),
        "show": (str(GANCORE), "show", "augmenter", "gaussian_noise"),
        "check": (str(GANCORE), "check", "gancore-plugin-example"),
        "conformance": (sys.executable, "-m", "pytest", "--gancore-conformance", "example", "-q", "-p",
                        "no:cacheprovider", "-k", "conformance"),
    }
    with ThreadPoolExecutor(len(todo)) as pool:
        yield {name: pool.submit(installed.run, *args) for name, args in todo.items()}


def _stdout(commands: dict[str, Future[subprocess.CompletedProcess[str]]], name: str) -> str:
    """The output of a finished command, which must have succeeded."""
    result = commands[name].result()
    assert result.returncode == 0, f"{name}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_holds_the_package_and_its_entry_point(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read("gancore_plugin_example-0.1.0.dist-info/entry_points.txt").decode()
    assert {"gancore_plugin_example/__init__.py", "gancore_plugin_example/losses.py",
            "gancore_plugin_example/augment.py"} <= names
    assert not any(name.startswith("tests/") for name in names)
    assert "[gancore]\nexample = gancore_plugin_example" in entry_points


def test_gancore_plugins_shows_the_plugin(commands: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    lines = _stdout(commands, "plugins").splitlines()
    header = lines.index("example  [gancore-plugin-example 0.1.0]  ok")
    assert lines[header + 1].strip() == "loss:relativistic_hinge, augmenter:gaussian_noise"
    assert any(line.startswith("gancore  [gancore ") and line.endswith("]  ok") for line in lines)


def test_gancore_list_shows_the_new_loss_beside_the_builtins(
    commands: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    rows = {line.split()[0]: line for line in _stdout(commands, "list").splitlines()}
    assert "Relativistic paired hinge loss" in rows["relativistic_hinge"]
    assert rows["relativistic_hinge"].endswith("[example]")
    assert rows["hinge"].endswith("[gancore]")


def test_gancore_show_describes_the_augmenter_parameters(
    commands: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    out = _stdout(commands, "show")
    assert out.startswith("augmenter gaussian_noise  (plugin example)\n  Instance noise: adds N(0, σ²)")
    assert "    sigma: number (default 0.1, ≥ 0)  σ at the start of training\n" in out
    assert "    p: number (default 1.0, ≥ 0, ≤ 1)  probability that a sample gets noise\n" in out
    assert "    anneal_kimg: number (default 0.0, ≥ 0)  kimg over which σ falls to 0" in out


def test_a_recipe_trains_with_the_plugin_components(
    installed: Installed, commands: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    _stdout(commands, "run")
    out = installed.site.parent / "run"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    trained = [r for r in records if "Loss/D" in r]
    assert trained and trained[-1]["kimg"] >= 2
    assert all(0 <= r["Loss/D"] < 10 and "Loss/G" in r for r in trained)
    assert all(r["Augment/p"] == 0.5 for r in trained)
    final = torch.load(out / "network-final.pt", weights_only=True)
    # the trainer called update() after every D step, so σ was annealed to 0 by 1 kimg
    assert final["augmenter"]["sigma"].item() == 0.0
    assert final["augmenter"]["p"].item() == 0.5


def test_the_example_own_tests_pass(commands: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _stdout(commands, "pytest")
    assert " passed" in out and "failed" not in out and "error" not in out


def test_gancore_check_runs_the_kit_on_the_installed_plugin(
    commands: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    out = _stdout(commands, "check")
    lines = [line for line in out.splitlines() if line[:4] in ("ok  ", "FAIL", "skip")]
    assert [line.split()[1] for line in lines] == ["loss:relativistic_hinge"] * 2 + ["augmenter:gaussian_noise"] * 2
    assert all(line.startswith("ok  ") for line in lines)
    assert out.rstrip().endswith("4 conform, 0 fail, 0 not checked")


def test_pytest_option_adds_a_conformance_test_per_example(
    commands: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    out = _stdout(commands, "conformance")
    assert "4 passed" in out and "failed" not in out
