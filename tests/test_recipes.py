"""Recipes: broken files and the exact message each gives, overrides, schedules and the JSON Schema.

Every broken recipe under ``tests/broken_recipes`` has its exact stderr in ``expected.yaml``.
Each is checked in-process through ``gancore.cli.main`` (fast, one test per recipe and
command); real ``python -m gancore`` processes then confirm the exit status, the absence of
tracebacks and of run directories for the same files (one process for all ``validate`` cases,
one per build-time case, since every process pays for importing torch).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gancore import cli
from gancore.errors import ConfigError
from gancore.recipe import Recipe, apply_overrides, component_entries, load, read_yaml, validate
from gancore.registry import default_registry
from gancore.schedule import Schedule

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).resolve().parent / "broken_recipes"
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TOY = ROOT / "tests" / "toy.yaml"

EXPECTED: dict[str, dict[str, str]] = yaml.safe_load((BROKEN / "expected.yaml").read_text())
BROKEN_NAMES = sorted(EXPECTED)
VALIDATE_TIME = [n for n in BROKEN_NAMES if EXPECTED[n]["command"] == "validate"]
BUILD_TIME = [n for n in BROKEN_NAMES if EXPECTED[n]["command"] == "run"]


def gancore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m gancore ARGS`` in ``cwd``, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "gancore", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def copy_broken(names: list[str], where: Path) -> None:
    for name in names:
        shutil.copy(BROKEN / name, where / name)


def toy() -> dict[str, Any]:
    return read_yaml(TOY)


# -- the broken recipes --------------------------------------------------------------------------


def test_every_broken_recipe_has_exactly_one_expectation() -> None:
    files = sorted(p.name for p in BROKEN.glob("*.yaml") if p.name != "expected.yaml")
    assert files == BROKEN_NAMES
    assert len(files) >= 18
    for name, entry in EXPECTED.items():
        assert set(entry) == {"command", "stderr"}, name
        assert entry["command"] in ("validate", "run"), name
        assert entry["stderr"].startswith("error: ") and entry["stderr"].endswith("\n"), name


@pytest.mark.parametrize("name", VALIDATE_TIME)
def test_validate_refuses_broken_recipe(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    copy_broken([name], tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", name]) == 2
    out, err = capsys.readouterr()
    assert err == EXPECTED[name]["stderr"]
    assert out == ""


@pytest.mark.parametrize("name", BUILD_TIME)
def test_build_time_problems_pass_validate(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """These recipes are well-formed; only building the components shows that they cannot run."""
    copy_broken([name], tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", name]) == 0
    assert capsys.readouterr().out == f"{name}: ok\n"


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_run_refuses_broken_recipe_before_making_a_run_directory(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_broken([name], tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", name]) == 2
    out, err = capsys.readouterr()
    assert err == EXPECTED[name]["stderr"]  # run reports what validate would, and the build-time problems
    assert out == ""
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no runs/


def test_validate_process_reports_every_broken_recipe_in_order(tmp_path: Path) -> None:
    """One ``gancore validate`` over all of them (and a good one): each reported, status 2, no traceback."""
    copy_broken(VALIDATE_TIME, tmp_path)
    shutil.copy(TOY, tmp_path / "good.yaml")
    names = VALIDATE_TIME[:3] + ["good.yaml"] + VALIDATE_TIME[3:]
    result = gancore("validate", *names, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "".join(EXPECTED[n]["stderr"] for n in VALIDATE_TIME)
    assert result.stdout == "good.yaml: ok\n"
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(VALIDATE_TIME + ["good.yaml"])


@pytest.mark.parametrize("name", BUILD_TIME + ["two_problems.yaml", "malformed_yaml.yaml"])
def test_run_process_refuses_broken_recipe(name: str, tmp_path: Path) -> None:
    copy_broken([name], tmp_path)
    result = gancore("run", name, "--out", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == EXPECTED[name]["stderr"]
    assert "Traceback" not in result.stderr + result.stdout
    assert [p.name for p in tmp_path.iterdir()] == [name]  # neither out/ nor runs/


def test_structure_and_parameter_problems_are_reported_together() -> None:
    raw = toy()
    raw["train"]["batch_size"] = 0
    raw["regularizers"][1]["params"]["gamma"] = -1
    with pytest.raises(ConfigError) as info:
        validate(raw, default_registry())
    assert info.value.problems == [
        "train.batch_size = 0: should be greater than 0",
        "regularizers[1].params.gamma = -1: should be greater than or equal to 0 (start and end of a schedule alike)",
    ]


def test_all_problems_of_one_pass_are_reported_together() -> None:
    raw = toy()
    raw["train"]["batch_size"] = 0
    raw["train"]["warmup"] = 5
    raw["seed"] = -1
    with pytest.raises(ConfigError) as info:
        validate(raw, default_registry(), "r.yaml")
    assert sorted(info.value.problems) == sorted([
        "train.batch_size = 0: should be greater than 0",
        "train.warmup: unknown key; allowed keys: batch_size, total_kimg, d_steps_per_g_step, g_optimizer, "
        "d_optimizer, ema_half_life_kimg, ema_start_kimg, log_every_kimg, sample_every_kimg, num_samples, device, "
        "allow_tf32, num_workers, precision, checkpoint_every_kimg, keep_checkpoints, max_bad_steps",
        "seed = -1: should be greater than or equal to 0",
    ])
    assert str(info.value).startswith("r.yaml: 3 problems\n  ")


def test_schedule_bounds_apply_to_both_ends() -> None:
    raw = toy()
    raw["train"]["g_optimizer"]["lr"] = {"start": 0, "end": 1e-3}
    with pytest.raises(ConfigError) as info:
        validate(raw, default_registry())
    assert info.value.problems == [
        'train.g_optimizer.lr = {"start": 0, "end": 0.001}: should be greater than 0 '
        "(start and end of a schedule alike)"
    ]
    raw = toy()
    raw["regularizers"][1]["params"]["gamma"] = {"start": 1.0, "end": -1.0, "burn_in_kimg": 10}
    with pytest.raises(ConfigError) as info:
        validate(raw, default_registry())
    assert info.value.problems == [
        'regularizers[1].params.gamma = {"start": 1.0, "end": -1.0, "burn_in_kimg": 10}: should be greater than '
        "or equal to 0 (start and end of a schedule alike)"
    ]


def test_missing_recipe_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: cannot read the recipe: No such file or directory"


# -- valid recipes -------------------------------------------------------------------------------


def test_the_shipped_recipes_are_found() -> None:
    assert {p.name for p in RECIPES} >= {"quickstart.yaml", "toy_25gaussians.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_validates(path: Path) -> None:
    raw = read_yaml(path)
    recipe, loaded = load(path, default_registry())
    assert isinstance(recipe, Recipe)
    assert loaded == raw


def test_toy_recipe_reads_as_written() -> None:
    recipe, _ = load(TOY, default_registry())
    assert recipe.data.name == "gaussians_grid"
    assert recipe.generator.params == {"z_dim": 64, "width": 256, "depth": 3}
    assert [(r.name, r.params["gamma"]) for r in recipe.regularizers] == [("r1", 0.1), ("r2", 0.1)]
    assert recipe.augmenter is None
    assert [(m.name, m.every_kimg) for m in recipe.metrics] == [("mixture_modes", 250)]
    assert (recipe.train.batch_size, recipe.train.total_kimg, recipe.seed) == (256, 500, 0)
    assert [path for path, _, _ in component_entries(read_yaml(TOY))] == [
        "data", "generator", "discriminator", "loss", "regularizers[0]", "regularizers[1]", "metrics[0]"]


# -- overrides -----------------------------------------------------------------------------------


def test_overrides_set_nested_keys_on_a_copy() -> None:
    raw = toy()
    before = copy.deepcopy(raw)
    data = apply_overrides(raw, ["train.batch_size=64", "loss.name=hinge", "train.g_optimizer.beta1=0.5"])
    assert raw == before
    assert data["train"]["batch_size"] == 64 and isinstance(data["train"]["batch_size"], int)
    assert data["loss"] == {"name": "hinge"}
    assert data["train"]["g_optimizer"] == {"lr": 2e-4, "beta1": 0.5, "beta2": 0.99}
    assert data["train"]["d_optimizer"] == before["train"]["d_optimizer"]
    rest = {k: v for k, v in data.items() if k not in ("train", "loss")}
    assert rest == {k: v for k, v in before.items() if k not in ("train", "loss")}


def test_overrides_create_missing_sections() -> None:
    raw = toy()
    del raw["train"]["g_optimizer"]
    data = apply_overrides(raw, ["train.g_optimizer.lr=1e-3", "augmenter.name=ada", "data.params.std=0.1"])
    assert data["train"]["g_optimizer"] == {"lr": 0.001}
    assert data["augmenter"] == {"name": "ada"}
    assert data["data"] == {"name": "gaussians_grid", "params": {"std": 0.1}}


@pytest.mark.parametrize("key", ["regularizers.1.params.gamma", "regularizers[1].params.gamma"])
def test_overrides_index_lists(key: str) -> None:
    data = apply_overrides(toy(), [f"{key}=5"])
    assert data["regularizers"] == [{"name": "r1", "params": {"gamma": 0.1}}, {"name": "r2", "params": {"gamma": 5}}]


def test_override_one_past_the_end_appends_to_a_list() -> None:
    data = apply_overrides(toy(), ["regularizers.2={name: l2, params: {weight: 0.01}}"])
    assert [r["name"] for r in data["regularizers"]] == ["r1", "r2", "l2"]
    assert data["regularizers"][2]["params"] == {"weight": 0.01}


def test_later_override_wins() -> None:
    assert apply_overrides(toy(), ["seed=1", "seed=2"])["seed"] == 2


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64", 64),
        ("0.5", 0.5),
        ("1e-3", 0.001),  # YAML 1.2 float, as in recipe files
        ("-2.5E+3", -2500.0),
        ("true", True),
        ("null", None),
        ("hinge", "hinge"),
        ("'64'", "64"),
        ("[1, 2]", [1, 2]),
        ("{start: 0, end: 1, shape: linear}", {"start": 0, "end": 1, "shape": "linear"}),
        ("{unclosed", "{unclosed"),  # not YAML: kept as the text given
        ("a=b", "a=b"),  # only the first = separates key and value
        ("", None),
    ],
)
def test_override_values_are_read_as_yaml(text: str, value: Any) -> None:
    got = apply_overrides({}, [f"x={text}"])["x"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("regularizers.5.params.gamma=1", "override 'regularizers.5.params.gamma=1': regularizers[5] does not exist"),
        ("regularizers[5].params.gamma=1",
         "override 'regularizers[5].params.gamma=1': regularizers[5] does not exist"),
        ("regularizers.7=1", "override 'regularizers.7=1': regularizers.7 does not exist"),
        ("seed.value=1", "override 'seed.value=1': seed.value does not exist"),
        ("train.batch_size.x.y=1", "override 'train.batch_size.x.y=1': train.batch_size.x does not exist"),
        ("train.batch_size", "override 'train.batch_size' should look like key.path=value"),
        ("=5", "override '=5' should look like key.path=value"),
    ],
)
def test_bad_override_paths_are_refused(override: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(toy(), [override])
    assert info.value.problems == [problem]


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError) as info:
        load(TOY, default_registry(), ["train.batch_size=0"])
    assert str(info.value) == f"{TOY}: train.batch_size = 0: should be greater than 0"
    with pytest.raises(ConfigError) as info:
        load(TOY, default_registry(), ["regularizers[1].params.gamma=-2"])
    assert info.value.problems == [
        "regularizers[1].params.gamma = -2: should be greater than or equal to 0 (start and end of a schedule alike)"
    ]
    with pytest.raises(ConfigError) as info:
        load(TOY, default_registry(), ["loss.name=hinj"])
    assert info.value.problems[0].startswith("loss.name = \"hinj\": no loss named 'hinj' is installed (did you mean "
                                             "'hinge'?)")
    recipe, raw = load(TOY, default_registry(), ["train.batch_size=64", "loss.name=hinge"])
    assert (recipe.train.batch_size, recipe.loss.name) == (64, "hinge")
    assert raw["train"]["batch_size"] == 64


# -- schedules -----------------------------------------------------------------------------------


def cosine(start: float, end: float, burn_in: float, kimg: float) -> float:
    """R3GAN's burn-in, written out: start + (1 − ½(1 + cos(π·t)))·(end − start), then end."""
    t = min(max(kimg, 0.0) / burn_in, 1.0)
    return start + (1 - 0.5 * (1 + math.cos(math.pi * t))) * (end - start)


SCHEDULED_RECIPE = """\
data: {name: gaussians_grid}
generator: {name: mlp, params: {z_dim: 8, width: 16, depth: 1}}
discriminator: {name: mlp, params: {width: 16, depth: 1}}
loss: {name: rpgan}
regularizers:
  - {name: r1, params: {gamma: {start: 1, end: 0.1, burn_in_kimg: 50, shape: cosine}}}
  - {name: r2, params: {gamma: 0.5}}
train:
  batch_size: 64
  total_kimg: 1
  g_optimizer: {lr: {start: 1e-4, end: 4e-4, burn_in_kimg: 100, shape: linear}, beta2: 0.9}
  d_optimizer: {beta2: {start: 0.9, end: 0.99, burn_in_kimg: 20}}
  ema_half_life_kimg: {start: 0, end: 10, burn_in_kimg: 200}
"""


@pytest.fixture
def scheduled(tmp_path: Path) -> Recipe:
    path = tmp_path / "scheduled.yaml"
    path.write_text(SCHEDULED_RECIPE)
    recipe, _ = load(path, default_registry())
    return recipe


def test_linear_schedule_in_a_recipe(scheduled: Recipe) -> None:
    lr = scheduled.train.g_optimizer.lr
    assert isinstance(lr, Schedule) and callable(lr)
    assert (lr.start, lr.end, lr.burn_in_kimg, lr.shape) == (1e-4, 4e-4, 100, "linear")
    for kimg, value in [(-5, 1e-4), (0, 1e-4), (25, 1.75e-4), (50, 2.5e-4), (100, 4e-4), (150, 4e-4), (1e6, 4e-4)]:
        assert lr(kimg) == pytest.approx(value, rel=1e-12), kimg


def test_cosine_schedule_in_a_recipe(scheduled: Recipe) -> None:
    ema = scheduled.train.ema_half_life_kimg
    assert ema.shape == "cosine"  # the default shape
    assert ema(0) == 0.0
    assert ema(50) == pytest.approx(10 * (1 - 0.5 * (1 + math.cos(math.pi / 4))), rel=1e-12)
    assert ema(50) == pytest.approx(1.4644660940672624, rel=1e-12)
    assert ema(100) == pytest.approx(5.0, rel=1e-12)  # half-way is the mid-point
    assert ema(150) == pytest.approx(cosine(0, 10, 200, 150), rel=1e-12)
    assert ema(200) == 10.0
    assert ema(400) == 10.0
    beta2 = scheduled.train.d_optimizer.beta2
    for kimg in (0, 5, 10, 15, 20, 30):
        assert beta2(kimg) == pytest.approx(cosine(0.9, 0.99, 20, kimg), rel=1e-12), kimg


def test_numbers_become_constant_schedules(scheduled: Recipe) -> None:
    beta2 = scheduled.train.g_optimizer.beta2
    assert isinstance(beta2, Schedule)
    assert [beta2(k) for k in (0, 1, 1000)] == [0.9, 0.9, 0.9]
    lr = scheduled.train.d_optimizer.lr  # the default
    assert isinstance(lr, Schedule) and lr(0) == lr(1e4) == 2e-4


def test_a_component_receives_its_schedule(scheduled: Recipe) -> None:
    registry = default_registry()
    r1 = registry.create("regularizer", scheduled.regularizers[0].name, scheduled.regularizers[0].params)
    gamma = r1.gamma
    assert isinstance(gamma, Schedule)
    assert gamma(0) == 1.0
    assert gamma(25) == pytest.approx(0.55, rel=1e-12)  # 1 + ½·(0.1 − 1)
    assert gamma(10) == pytest.approx(cosine(1, 0.1, 50, 10), rel=1e-12)
    assert gamma(50) == pytest.approx(0.1) and gamma(51) == pytest.approx(0.1)
    r2 = registry.create("regularizer", "r2", scheduled.regularizers[1].params)
    assert isinstance(r2.gamma, Schedule) and r2.gamma(0) == r2.gamma(100) == 0.5


def test_zero_burn_in_is_the_end_value_at_once() -> None:
    recipe = validate({**toy(), "train": {"batch_size": 8, "total_kimg": 1,
                                          "ema_half_life_kimg": {"start": 3, "end": 7}}}, default_registry())
    schedule = recipe.train.ema_half_life_kimg
    assert schedule.burn_in_kimg == 0
    assert schedule(0) == schedule(1) == 7.0


# -- JSON Schema ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What ``gancore schema`` prints, parsed: it must be JSON and a valid 2020-12 schema."""
    result = gancore("schema", cwd=tmp_path_factory.mktemp("schema"))
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(parsed)
    return parsed


def errors(schema: dict[str, Any], data: Any) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]


def test_schema_describes_recipes_and_components(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"data", "generator", "discriminator", "loss", "regularizers", "augmenter",
                                         "metrics", "train", "seed"}
    assert set(schema["required"]) == {"data", "generator", "discriminator", "loss", "train"}
    losses = [v["properties"]["name"]["const"] for v in schema["properties"]["loss"]["oneOf"]]
    assert sorted(losses) == default_registry().names("loss")


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipe_matches_schema(schema: dict[str, Any], path: Path) -> None:
    assert errors(schema, read_yaml(path)) == []


def test_scheduled_recipe_matches_schema(schema: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "scheduled.yaml"
    path.write_text(SCHEDULED_RECIPE)
    assert errors(schema, read_yaml(path)) == []


@pytest.mark.parametrize(
    "name",
    ["unknown_top_level_key.yaml", "unknown_train_key.yaml", "missing_batch_size.yaml", "zero_batch_size.yaml",
     "string_batch_size.yaml", "loss_near_miss.yaml", "unknown_param.yaml", "schedule_bad_shape.yaml",
     "schedule_missing_end.yaml", "schedule_negative_burn_in.yaml", "schedule_boolean.yaml",
     "regularizers_not_list.yaml", "augmenter_not_installed.yaml", "metric_every_kimg_zero.yaml",
     "two_problems.yaml", "negative_gamma.yaml"],
)
def test_broken_recipe_does_not_match_schema(schema: dict[str, Any], name: str) -> None:
    assert errors(schema, read_yaml(BROKEN / name)) != []


def test_schema_bounds_both_ends_of_a_schedule(schema: dict[str, Any]) -> None:
    raw = toy()
    raw["regularizers"][0]["params"]["gamma"] = {"start": 1.0, "end": -0.5, "burn_in_kimg": 10}
    assert errors(schema, raw) != []
    raw["regularizers"][0]["params"]["gamma"] = {"start": 1.0, "end": 0.5, "burn_in_kimg": 10}
    assert errors(schema, raw) == []


def test_not_a_mapping_does_not_match_schema(schema: dict[str, Any]) -> None:
    assert errors(schema, yaml.safe_load((BROKEN / "not_a_mapping.yaml").read_text())) != []
