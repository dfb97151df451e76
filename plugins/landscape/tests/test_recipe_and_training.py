"""The study's recipe (ResNet CIFAR, NS loss, spectral norm, no penalty) and a few steps of the core's trainer."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from gancore import CORE_API_VERSION, component, hookimpl
from gancore import recipe as recipes
from gancore.build import build, build_networks
from gancore.builtin.datasets.base import TensorImageDataset
from gancore.testing import make_registry
from gancore.training import Trainer
from torch import nn

import gancore_landscape
from gancore_landscape.networks import ResNetCIFARDiscriminator, ResNetCIFARGenerator

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "landscape_resnet_cifar_ns_sn.yaml"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return recipes.read_yaml(RECIPE)


def test_recipe_has_the_studys_best_settings_for_spectral_norm(raw: dict[str, Any]) -> None:
    """ResNet CIFAR, SN without penalty: lr 2e-4, β = (0.5, 0.999), n_disc 5, batch 64, 200k D steps."""
    assert (raw["generator"]["name"], raw["discriminator"]["name"]) == ("resnet_cifar", "resnet_cifar")
    assert raw["discriminator"]["params"].get("normalization", "none") == "none"
    assert raw["loss"] == {"name": "nonsaturating"}
    assert raw["regularizers"] == [{"name": "spectral_norm", "params": {"targets": ["discriminator"]}}]
    assert raw["data"]["name"] == "cifar10"
    train = raw["train"]
    assert (train["batch_size"], train["d_steps_per_g_step"]) == (64, 5)
    assert train["total_kimg"] * 1000 / train["batch_size"] == 200_000, "200k D steps of 64 real images"
    for opt in ("g_optimizer", "d_optimizer"):
        assert (train[opt]["lr"], train[opt]["beta1"], train[opt]["beta2"]) == (2e-4, 0.5, 0.999)
    assert [m["name"] for m in raw["metrics"]] == ["fid50k_full"]


def without_spectral_norm(raw: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(raw)
    stripped["regularizers"] = [r for r in stripped["regularizers"] if r["name"] != "spectral_norm"]
    return stripped


def test_recipe_builds_unconditional_networks(raw: dict[str, Any]) -> None:
    """Everything but gancore-sn's regularizer validates with this plugin alone, and builds the study's networks."""
    registry = make_registry(gancore_landscape)
    recipe = recipes.validate(without_spectral_norm(raw), registry)
    nets = build_networks(recipe, registry)
    g, d = nets.generator, nets.discriminator
    assert isinstance(g, ResNetCIFARGenerator) and isinstance(d, ResNetCIFARDiscriminator)
    assert (g.num_classes, d.num_classes, g.output_shape, g.z_dim) == (0, 0, (3, 32, 32), 128)
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in d.modules())


def test_recipe_validates_with_gancore_sn(raw: dict[str, Any]) -> None:
    gancore_sn = pytest.importorskip("gancore_sn")
    recipes.validate(raw, make_registry(gancore_landscape, gancore_sn))


@component("dataset", "noise_images")
def noise_images(size: int = 32, resolution: int = 8) -> TensorImageDataset:
    """Uniformly random RGB images with 10 labels, held in memory: CIFAR-shaped data without a download."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (size, 3, resolution, resolution), generator=generator, dtype=torch.uint8)
    return TensorImageDataset(images, torch.arange(size) % 10, 10, False)


class StandInData:
    """A plugin with the test's data set."""

    GANCORE_API_VERSION = CORE_API_VERSION

    @hookimpl
    def gancore_components(self) -> list[object]:
        return [noise_images]


def test_a_few_training_steps(tmp_path: Path) -> None:
    """SNDCGAN (G with BN, D with layer norm) at 8×8, NS loss and WGAN-GP (λ=1) on labelled in-memory images, through
    the core's trainer: 2 iterations of 2 D steps of 8 images and one G step. Every parameter moves but the biases
    that feed G's BatchNorms (which subtract them, so they get no gradient); losses and the penalty are finite."""
    raw = {
        "data": {"name": "noise_images"},
        "generator": {"name": "sndcgan", "params": {"resolution": 8}},
        "discriminator": {"name": "sndcgan", "params": {"resolution": 8, "normalization": "layer"}},
        "loss": {"name": "nonsaturating"},
        "regularizers": [{"name": "wgan_gp", "params": {"weight": 1.0}}],
        "train": {"batch_size": 8, "total_kimg": 0.032, "d_steps_per_g_step": 2, "device": "cpu", "num_workers": 0,
                  "num_samples": 4, "g_optimizer": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999},
                  "d_optimizer": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999}},
    }
    registry = make_registry(gancore_landscape, StandInData())
    recipe = recipes.validate(raw, registry)
    parts = build(recipe, registry)
    before = {f"G.{n}": p.detach().clone() for n, p in parts.generator.named_parameters()}
    before.update({f"D.{n}": p.detach().clone() for n, p in parts.discriminator.named_parameters()})
    trainer = Trainer(recipe, parts, tmp_path, raw)
    trainer.run()
    assert trainer.steps == {"generator": 2, "discriminator": 4}
    after = {f"G.{n}": p for n, p in trainer.G.named_parameters()}
    after.update({f"D.{n}": p for n, p in trainer.D.named_parameters()})
    unchanged = {n for n, p in before.items() if torch.equal(p, after[n].detach().cpu())}
    assert unchanged <= {"G.body.2.bias", "G.body.5.bias", "G.body.8.bias"}
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    logged = [line for line in lines if "Loss/D" in line]
    assert logged and all(math.isfinite(line[k]) for line in logged
                          for k in ("Loss/D", "Loss/G", "Penalty/wgan_gp"))
