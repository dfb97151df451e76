"""The plugin in recipes: clean validation messages for bad parameters, and short runs of gancore's Trainer with
spectral_norm on G and D and orthogonal on G (σ, the logged penalty, checkpoints, a bit-exact resume)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from gancore import ConfigError
from gancore import checkpoint as checkpoints
from gancore import recipe as recipes
from gancore.build import build, build_networks
from gancore.testing import make_registry
from gancore.training import Trainer
from torch import nn

import gancore_sn
from gancore_sn import sigmas

REGISTRY = make_registry(gancore_sn)
REGULARIZERS = [{"name": "spectral_norm", "params": {"targets": ["generator", "discriminator"]}},
                {"name": "orthogonal", "params": {"beta": 1e-4}}]


def recipe(regularizers: list[dict[str, Any]], **train: Any) -> dict[str, Any]:
    """Tiny MLPs on the 5 × 5 grid of Gaussians: 10 steps of 64 points, a checkpoint every 5."""
    return {
        "data": {"name": "gaussians_grid", "params": {"size": 2048}},
        "generator": {"name": "mlp", "params": {"z_dim": 8, "width": 32, "depth": 2}},
        "discriminator": {"name": "mlp", "params": {"width": 32, "depth": 2}},
        "loss": {"name": "hinge"},
        "regularizers": regularizers,
        "train": {"batch_size": 64, "total_kimg": 0.64, "log_every_kimg": 0.32, "sample_every_kimg": 100,
                  "checkpoint_every_kimg": 0.32, "num_samples": 16, "device": "cpu", "num_workers": 0,
                  "ema_half_life_kimg": 0.1, **train},
        "seed": 1,
    }


def trainer(raw: dict[str, Any], out: Path) -> Trainer:
    validated = recipes.validate(raw, REGISTRY)
    return Trainer(validated, build(validated, REGISTRY), out, raw)


def raw_matrix(layer: nn.Module) -> torch.Tensor:
    weight = layer.parametrizations.weight.original.detach()
    return weight.reshape(weight.shape[0], -1)


# -- validation ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "problem"), [
    ({"name": "spectral_norm", "params": {"targets": []}},
     "regularizers[0].params.targets = []: List should have at least 1 item after validation, not 0"),
    ({"name": "spectral_norm", "params": {"n_power_iterations": 0}},
     "regularizers[0].params.n_power_iterations = 0: should be greater than or equal to 1"),
    ({"name": "spectral_norm", "params": {"eps": 0}}, "regularizers[0].params.eps = 0: should be greater than 0"),
    ({"name": "spectral_norm", "params": {"targets": ["critic"]}},
     "regularizers[0].params.targets[0] = \"critic\": should be 'generator' or 'discriminator'"),
    ({"name": "spectral_norm", "params": {"targets": ["generator", "discriminator", "generator"]}},
     "regularizers[0].params: targets names 'generator' more than once"),
    ({"name": "spectral_norm", "params": {"include": []}},
     "regularizers[0].params.include = []: List should have at least 1 item after validation, not 0"),
    ({"name": "spectral_norm", "params": {"iterations": 2}},
     "regularizers[0].params.iterations: unknown key; allowed keys: targets, include, exclude, n_power_iterations, "
     "eps"),
    ({"name": "orthogonal", "params": {"beta": -1}},
     "regularizers[0].params.beta = -1: should be greater than or equal to 0"),
    ({"name": "orthogonal", "params": {"mode": "diagonal"}},
     "regularizers[0].params.mode = \"diagonal\": should be 'relaxed' or 'full'"),
    ({"name": "orthogonal_init", "params": {"gain": 0}},
     "regularizers[0].params.gain = 0: should be greater than 0"),
])
def test_bad_parameters_are_reported_in_one_clean_line(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        recipes.validate(recipe([entry]), REGISTRY)
    assert caught.value.problems == [problem]


def test_orthogonal_init_after_spectral_norm_in_a_recipe_leaves_orthogonal_raw_weights_and_sigma_one() -> None:
    raw = recipe([{"name": "spectral_norm", "params": {"targets": ["generator", "discriminator"]}},
                  {"name": "orthogonal_init"}])
    nets = build_networks(recipes.validate(raw, REGISTRY), REGISTRY)
    for network in (nets.generator, nets.discriminator):
        for name, sigma in sigmas(network).items():
            values = torch.linalg.svdvals(raw_matrix(network.get_submodule(name)))
            torch.testing.assert_close(values, torch.ones_like(values), rtol=1e-5, atol=0)
            assert float(sigma) == pytest.approx(1.0, rel=1e-5), name


# -- training --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, dict[str, dict[str, torch.Tensor]], Path]:
    """The uninterrupted run, with the σ of G and D as built."""
    out = tmp_path_factory.mktemp("whole")
    run = trainer(recipe(REGULARIZERS), out)
    start = {"G": sigmas(run.G), "D": sigmas(run.D)}
    run.run()
    return run, start, out


def test_a_short_run_trains_with_spectral_norm_and_orthogonal_and_checkpoints_sigma(
        whole: tuple[Trainer, dict[str, dict[str, torch.Tensor]], Path]) -> None:
    run, start, out = whole
    assert set(start["G"]) == {"net.0", "net.2", "net.4"} and set(start["D"]) == {"body.0", "body.2", "head"}
    for net in ("G", "D"):
        network = getattr(run, net)
        for name, sigma in sigmas(network).items():
            assert not torch.equal(sigma, start[net][name]), (net, name)
            exact = float(torch.linalg.svdvals(raw_matrix(network.get_submodule(name)))[0])
            # σ tracks the top singular value (it was estimated before the last step moved W a little)
            assert float(sigma) == pytest.approx(exact, rel=0.05), (net, name)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.32, 0.64]
    for line in lines:
        assert 0 < line["Penalty/orthogonal"] < 1e-2 and math.isfinite(line["Loss/D"]) and math.isfinite(line["Loss/G"])
        assert not any(key.startswith("Penalty/spectral_norm") for key in line)  # build-time only: no penalty
        logged = {key for key in line if key.startswith("spectral_norm/")}
        assert logged == {f"spectral_norm/{net}/sigma/{layer}" for net, layers in
                          (("generator", start["G"]), ("discriminator", start["D"])) for layer in layers}
    for net, network in (("generator", run.G), ("discriminator", run.D)):  # the last line logs σ as it ends
        for layer, sigma in sigmas(network).items():
            assert lines[-1][f"spectral_norm/{net}/sigma/{layer}"] == pytest.approx(float(sigma), rel=1e-6)
    found = checkpoints.read(checkpoints.listed(out)[0][1])
    assert found.nimg == 640
    for key, network in (("generator", run.G), ("generator_ema", run.G_ema), ("discriminator", run.D)):
        buffers = dict(network.named_buffers())
        names = [k for k in found.state[key] if k.endswith((".u", ".v", ".sigma"))]
        assert len(names) == 9, key
        for name in names:
            assert torch.equal(found.state[key][name], buffers[name]), (key, name)
    for name in ("net.0", "net.2", "net.4"):  # G's EMA runs on G's vectors, copied after every step
        for leaf in ("u", "v"):
            assert torch.equal(run.G_ema.get_buffer(f"{name}.parametrizations.weight.0.{leaf}"),
                               run.G.get_buffer(f"{name}.parametrizations.weight.0.{leaf}"))
    assert (out / "network-final.pt").is_file()


def test_a_resumed_run_is_bit_identical_to_the_uninterrupted_one(
        whole: tuple[Trainer, dict[str, dict[str, torch.Tensor]], Path], tmp_path: Path) -> None:
    first = trainer(recipe(REGULARIZERS, total_kimg=0.32), tmp_path)
    first.run()
    found, refused = checkpoints.newest_good(tmp_path, recipe(REGULARIZERS))
    assert refused == [] and found.nimg == 320
    rest = trainer(recipe(REGULARIZERS), tmp_path)
    rest.resume(found)
    rest.run()
    run, _, _ = whole
    for a, b in ((run.G, rest.G), (run.G_ema, rest.G_ema), (run.D, rest.D)):
        ours, theirs = a.state_dict(), b.state_dict()
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key
