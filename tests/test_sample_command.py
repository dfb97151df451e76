"""Sampling a finished run: truncated latents, fixed seeds, class labels, and `gancore sample`."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from gancore import cli
from gancore import recipe as recipes
from gancore.build import build
from gancore.images import image_grid
from gancore.registry import default_registry
from gancore.sampling import load_generator
from gancore.training import Trainer


@settings(max_examples=25, deadline=None)
@given(t=st.floats(0.2, 3.0), seed=st.integers(0, 2**31 - 1))
@example(t=0.5418406459976842, seed=1785390)  # t rounds up in float32: a component just beyond t once stayed
def test_truncated_latents_follow_the_truncated_normal(t: float, seed: int) -> None:
    """Resampled, not clamped: inside ±t, mean 0, and scipy's truncated-normal variance."""
    G = default_registry().create("generator", "mlp", {"z_dim": 50})
    z = G.sample_z(400, generator=torch.Generator().manual_seed(seed), truncation=t).double()
    assert z.shape == (400, 50) and float(z.abs().max()) <= t
    n = z.numel()
    var = scipy.stats.truncnorm(-t, t).var()
    assert abs(float(z.mean())) < 5 * math.sqrt(var / n)
    # the sample variance of n draws has a standard error of about √(E[z⁴] − var²)/√n
    fourth = scipy.stats.truncnorm(-t, t).moment(4)
    assert abs(float(z.var()) - var) < 5 * math.sqrt((fourth - var**2) / n)
    clamped = torch.randn(400, 50, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).clamp(-t, t)
    assert float((clamped.abs() == t).double().mean()) > 0.001 and float((z.abs() == t).double().mean()) == 0


def test_truncation_must_be_positive() -> None:
    G = default_registry().create("generator", "mlp", {})
    with pytest.raises(ValueError, match="truncation must be positive, got 0"):
        G.sample_z(3, truncation=0)


def conditional_digits() -> dict[str, Any]:
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 16, "width": 32, "depth": 1, "channels": 1, "resolution": 8,
                                                 "num_classes": 10}},
        "discriminator": {"name": "mlp", "params": {"width": 32, "depth": 1, "channels": 1, "resolution": 8,
                                                     "num_classes": 10}},
        "loss": {"name": "hinge"},
        "train": {"batch_size": 32, "total_kimg": 0.128, "device": "cpu", "num_workers": 0, "sample_every_kimg": 1},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    registry = default_registry()
    raw = conditional_digits()
    recipe = recipes.validate(raw, registry)
    Trainer(recipe, build(recipe, registry), out, raw).run()
    return out


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_sample_writes_the_ema_generator_s_images_for_the_seed_and_class(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    assert cli.main(["sample", str(trained), "--n", "12", "--out", str(out), "--seed", "7", "--class", "3",
                     "--truncation", "0.5", "--device", "cpu"]) == 0
    run = load_generator(trained, default_registry(), device="cpu")
    G = run.generator
    assert run.source.parent.name == "checkpoints" and run.kimg == pytest.approx(0.128)
    z = G.sample_z(12, "cpu", torch.Generator().manual_seed(7), truncation=0.5)
    with torch.no_grad():
        expected = G(z, torch.full((12,), 3))
    grid = image_grid(expected)
    scale = pixels(out).shape[0] // grid.shape[0]
    assert scale >= 1 and np.array_equal(pixels(out)[::scale, ::scale], grid[..., 0])


def test_sample_is_repeatable_and_each_option_changes_it(trained: Path, tmp_path: Path) -> None:
    def grid(*options: str) -> np.ndarray:
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.png"
        assert cli.main(["sample", str(trained), "--n", "10", "--out", str(out), *options]) == 0
        return pixels(out)

    base = grid("--seed", "1")
    assert np.array_equal(base, grid("--seed", "1"))
    for other in (("--seed", "2"), ("--seed", "1", "--truncation", "0.3"), ("--seed", "1", "--class", "4")):
        assert not np.array_equal(base, grid(*other)), other


def test_sample_falls_back_to_the_final_networks_and_explains_bad_requests(trained: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    shutil.rmtree(old / "checkpoints")
    assert cli.main(["sample", str(old), "--n", "4", "--out", str(tmp_path / "a.png")]) == 0
    assert f"from {old / 'network-final.pt'}" in capsys.readouterr().out
    for args, message in (
        (["--class", "10"], "--class 10: the generator has 10 classes"),
        (["--n", "0"], "--n 0: ask for at least one sample"),
        (["--truncation", "-1"], "--truncation -1.0: truncation must be positive, got -1.0"),
    ):
        assert cli.main(["sample", str(trained), "--out", str(tmp_path / "b.png"), *args]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    assert cli.main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "is not a gancore run directory (it has no recipe.yaml)" in capsys.readouterr().err
