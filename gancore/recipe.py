"""Recipes: YAML files that name every component of a run and every hyper-parameter.

A recipe is checked before anything runs: its structure against ``Recipe`` and each
component's ``params`` against that component's own model. All problems of both checks
are reported together, one line each, with the key path.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from gancore.errors import ConfigError, UnknownComponentError
from gancore.precision import Precision
from gancore.registry import Registry
from gancore.schedule import Scheduled, within
from gancore.validation import describe_validation_error, key_path, show_value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ComponentRef(_Strict):
    """A component by name, with its parameters (checked against the component's own model)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class MetricRef(ComponentRef):
    """A metric, computed at the end of the run and, if given, every ``every_kimg``."""

    every_kimg: float | None = Field(None, gt=0)


class OptimizerConfig(_Strict):
    """Adam for one network; ``lr`` and ``beta2`` may follow schedules (R3GAN)."""

    lr: Annotated[Scheduled, within(gt=0)] = 2e-4  # type: ignore[assignment]
    beta1: float = Field(0.0, ge=0, lt=1)
    beta2: Annotated[Scheduled, within(ge=0, lt=1)] = 0.99  # type: ignore[assignment]
    eps: float = Field(1e-8, gt=0)


class TrainConfig(_Strict):
    """Every hyper-parameter of the loop itself."""

    batch_size: int = Field(gt=0, description="global batch: real images per D step, over all processes")
    total_kimg: float = Field(gt=0, description="run length in thousands of real images shown to D")
    d_steps_per_g_step: int = Field(1, ge=1)
    g_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    d_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    ema_half_life_kimg: Annotated[Scheduled, within(ge=0)] = Field(  # type: ignore[assignment]
        0.0, description="half-life of G's EMA in kimg; 0 makes the EMA a copy of G"
    )
    ema_start_kimg: float = Field(0.0, ge=0, description="G's EMA copies G until this many kimg, then averages "
                                  "(BigGAN starts it after 1000 iterations on CIFAR, 20000 on ImageNet)")
    log_every_kimg: float = Field(1.0, gt=0)
    sample_every_kimg: float = Field(10.0, gt=0)
    num_samples: int = Field(64, gt=0, description="samples in each grid or scatter plot")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    allow_tf32: bool = Field(False, description="let CUDA matmuls and convolutions use TF32 (R3GAN keeps it off)")
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="data-loading worker processes per training process; auto: none for data held in "
        "memory, else a share of the CPUs"
    )
    precision: Precision = Field("fp32", description="fp32, or autocast to bf16 (parameters stay fp32); fp16 "
                                 "runs with a dynamic loss scale")
    checkpoint_every_kimg: float = Field(100.0, gt=0, description="a checkpoint every so many kimg, and at the end")
    keep_checkpoints: int = Field(3, ge=1, description="how many of the newest checkpoints to keep")
    max_bad_steps: int = Field(10, ge=1, description="stop after this many updates in a row skipped for a "
                               "non-finite loss or gradient")


class Recipe(_Strict):
    """A whole run. Components are ``{name, params}``; ``regularizers`` and ``metrics`` are lists."""

    data: ComponentRef
    generator: ComponentRef
    discriminator: ComponentRef
    loss: ComponentRef
    regularizers: list[ComponentRef] = Field(default_factory=list)
    augmenter: ComponentRef | None = None
    metrics: list[MetricRef] = Field(default_factory=list)
    train: TrainConfig
    seed: int = Field(0, ge=0)


SECTIONS = {"data": "dataset", "generator": "generator", "discriminator": "discriminator", "loss": "loss",
            "regularizers": "regularizer", "augmenter": "augmenter", "metrics": "metric"}
"""Every section of a recipe that holds components, with their kind."""
_LISTS = {"regularizers", "metrics"}


# -- reading ----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in first_line:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping (first at line {first_line[key]})",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-3` as a string; learning rates are written that way.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The recipe file as a dict; a missing file or malformed YAML raises ConfigError with the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"cannot read the recipe: {exc.strerror}"], str(path)) from None
    try:
        data = _parse(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([f"malformed YAML: {_yaml_problem(exc)}"], _where(path, exc.context_mark or exc.problem_mark)) from None
    except (yaml.YAMLError, ValueError) as exc:  # PyYAML raises ValueError for values such as 2024-13-01
        raise ConfigError([f"malformed YAML: {exc}"], str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(["a recipe must be a mapping of sections (data, generator, ...)"], str(path))
    return data


def _where(path: Path, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """The problem, and for an unclosed construct where it opened and where parsing broke."""
    if exc.context and exc.context_mark and exc.problem_mark:
        at = exc.problem_mark
        return f"{exc.context.removeprefix('while parsing ')} is not closed ({exc.problem} at line {at.line + 1}, column {at.column + 1})"
    return exc.problem or str(exc)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    data = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"override {item!r} should look like key.path=value"])
        try:
            value = _parse(text)
        except (yaml.YAMLError, ValueError):
            value = text
        parts = [int(p) if p.isdigit() else p for p in key.replace("[", ".").replace("]", "").split(".") if p]
        node: Any = data
        for depth, part in enumerate(parts[:-1]):
            nxt = parts[depth + 1]
            if isinstance(node, dict):
                if node.get(part) is None:  # absent, or `augmenter: null` being filled in
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                raise ConfigError([f"override {item!r}: {key_path('', parts[: depth + 1])} does not exist"])
        last = parts[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
            node[last:last + 1] = [value]
        else:
            raise ConfigError([f"override {item!r}: {key} does not exist"])
    return data


def validate(raw: dict[str, Any], registry: Registry, source: str = "") -> Recipe:
    """Check a recipe's structure and every component's parameters; raise ConfigError listing all problems."""
    problems: list[str] = []
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        problems = describe_validation_error(exc, Recipe)
    for path, kind, entry in component_entries(raw):
        try:
            registry.validate_params(kind, entry["name"], entry.get("params") or {}, path)
        except UnknownComponentError as exc:
            problems.append(f"{path}.name = {show_value(entry['name'])}: {exc}")
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems or recipe is None:
        raise ConfigError(problems, source)
    return recipe


def component_entries(raw: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(key path, kind, entry) of every component entry of a raw recipe that names a component.

    Entries whose shape is wrong are left to the structural check, which reports them.
    """
    found = []
    for section, kind in SECTIONS.items():
        value = raw.get(section)
        if section in _LISTS:
            entries = [(f"{section}[{i}]", e) for i, e in enumerate(value)] if isinstance(value, list) else []
        else:
            entries = [(section, value)]
        for path, entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) \
                    and isinstance(entry.get("params") or {}, dict):
                found.append((path, kind, entry))
    return found


def load(path: str | Path, registry: Registry, overrides: list[str] | None = None) -> tuple[Recipe, dict[str, Any]]:
    """Read, override and validate a recipe file; returns the recipe and the raw dict it came from."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    return validate(raw, registry, str(path)), raw


# -- JSON Schema ------------------------------------------------------------------------------

def json_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of a recipe, with every installed component's parameters, for editors."""
    specs = registry.list()
    keyed, defs = models_json_schema(
        [(Recipe, "validation")] + [(s.params, "validation") for s in specs],
        ref_template="#/$defs/{model}",
    )
    schema = keyed[(Recipe, "validation")]
    schema = {**defs["$defs"][schema["$ref"].split("/")[-1]], "$defs": defs["$defs"]}
    for section, kind in SECTIONS.items():
        variants = []
        for spec in (s for s in specs if s.kind == kind):
            variant: dict[str, Any] = {
                "type": "object",
                "description": spec.description,
                "properties": {"name": {"const": spec.name}, "params": keyed[(spec.params, "validation")]},
                "required": ["name"],
                "additionalProperties": False,
            }
            if kind == "metric":
                variant["properties"]["every_kimg"] = {"type": ["number", "null"], "exclusiveMinimum": 0}
            variants.append(variant)
        one = {"oneOf": variants} if variants else {"not": {}, "description": f"no {kind} is installed"}
        prop = schema["properties"][section]
        if prop.get("type") == "array":
            prop["items"] = one
        elif "anyOf" in prop:  # optional section
            prop["anyOf"] = [one, {"type": "null"}]
        else:
            schema["properties"][section] = one
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gancore recipe"
    return schema
