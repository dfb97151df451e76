"""The ``ada`` augmenter inside gancore's trainer: scheduled and adaptive p, logged and saved with the networks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from gancore import recipe as recipes
from gancore.build import build
from gancore.registry import default_registry
from gancore.training import Trainer


def digits_recipe(augmenter: dict[str, Any], total_kimg: float = 0.5) -> dict[str, Any]:
    """Small MLP networks on 8×8 digits, everything D sees going through ``augmenter``."""
    net = {"width": 32, "depth": 2, "channels": 1, "resolution": 8}
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 8, **net}},
        "discriminator": {"name": "mlp", "params": net},
        "loss": {"name": "rpgan"},
        "regularizers": [{"name": "r1", "params": {"gamma": 0.1}}],
        "augmenter": augmenter,
        "train": {"batch_size": 32, "total_kimg": total_kimg, "log_every_kimg": 0.128, "sample_every_kimg": 1,
                  "num_samples": 16, "device": "cpu"},
    }


def run(raw: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    registry = default_registry()
    recipe = recipes.validate(raw, registry)
    Trainer(recipe, build(recipe, registry), out, raw).run()
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_scheduled_p_is_followed_logged_and_saved(tmp_path: Path) -> None:
    schedule = {"start": 0.0, "end": 0.5, "burn_in_kimg": 0.256, "shape": "linear"}
    records = run(digits_recipe({"name": "ada", "params": {"preset": "bgc", "p": schedule}}), tmp_path)
    logged = [(r["kimg"], r["Augment/p"]) for r in records if "Augment/p" in r]
    # after the D step that ends at kimg, p was set to the schedule's value there
    assert logged and all(abs(p - 0.5 * min(kimg / 0.256, 1.0)) < 1e-6 for kimg, p in logged)
    final = torch.load(tmp_path / "network-final.pt", weights_only=True)
    assert final["augmenter"]["p"].item() == 0.5


def test_adaptive_p_moves_in_steps_of_the_images_seen(tmp_path: Path) -> None:
    params = {"preset": "bgc", "p": 0.0, "target": 0.6, "interval": 2, "adjust_kimg": 2}
    records = run(digits_recipe({"name": "ada", "params": params}), tmp_path)
    step = 32 * 2 / (2 * 1000)  # batch × interval / (adjust_kimg · 1000)
    ps = [r["Augment/p"] for r in records if "Augment/p" in r]
    rts = [r["Augment/rt"] for r in records if "Augment/rt" in r]
    assert len(rts) == len(ps) >= 3 and all(-1 <= rt <= 1 for rt in rts)
    assert all(0 <= p <= 0.99 and abs(p / step - round(p / step)) < 1e-4 for p in ps)
    final = torch.load(tmp_path / "network-final.pt", weights_only=True)["augmenter"]
    assert set(final) == {"p", "signs", "rt", "steps"}
    assert final["steps"].item() == 500 // 32 + 1  # one update per D step: ceil(500 / 32) steps
