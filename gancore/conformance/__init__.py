"""The conformance kit: every kind's contract as executable, property-based checks (``check_component``).

A plugin author runs it from a test (``gancore.testing.check_component``), from pytest
(``pytest --gancore-conformance DIST``) or from the command line (``gancore check DIST``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from gancore.conformance.augmenters import check_augmenter
from gancore.conformance.clauses import Checker, ConformanceError, NotCheckable, Report
from gancore.conformance.data import check_dataset, check_metric, choose_data
from gancore.conformance.networks import check_discriminator, check_generator
from gancore.conformance.objectives import check_loss, check_regularizer
from gancore.errors import ConfigError, DataError, GancoreError
from gancore.interfaces import Dataset
from gancore.registry import Registry, default_registry

__all__ = ["ConformanceError", "NotCheckable", "Report", "check_component", "components_of", "examples"]

MAX_EXAMPLES = {"generator": 3, "discriminator": 3, "loss": 25, "regularizer": 5, "augmenter": 8, "metric": 1,
                "dataset": 10}
"""Hypothesis examples per property by kind: networks are slow to run, losses are cheap."""
AUGMENTER_INPUT = (3, 16, 16)
"""The images an augmenter is checked on unless ``input_shape`` says otherwise."""


def components_of(registry: Registry, plugin: str) -> list[tuple[str, str]]:
    """(kind, name) of every component one plugin registers, the plugin named by its distribution (as pip
    knows it: ``gancore-plugin-x``) or its entry point; gancore's own built-ins are the distribution ``gancore``."""
    def canonical(text: str) -> str:
        return text.lower().replace("_", "-").replace(".", "-")

    found = [info for info in registry.plugins.values()
             if canonical(plugin) in (canonical(info.name), canonical(info.distribution))]
    if not found:
        known = ", ".join(sorted({i.distribution or i.name for i in registry.plugins.values()}))
        raise GancoreError(f"no installed plugin or distribution is named {plugin!r}; installed: {known}")
    broken = [i for i in found if i.status != "ok"]
    if broken:
        raise GancoreError(f"the plugin {broken[0].name!r} is not usable ({broken[0].status}): {broken[0].error}")
    return [tuple(c.split(":", 1)) for info in found for c in info.components]  # type: ignore[misc]


def examples(registry: Registry, kind: str, name: str) -> list[dict[str, Any]]:
    """The parameter sets the kit checks a component with: its declared examples, else its defaults."""
    return [dict(e) for e in registry.get(kind, name).examples] or [{}]


def check_component(kind: str, name: str, params: Mapping[str, Any] | None = None, *,
                    registry: Registry | None = None, data: tuple[str, Mapping[str, Any]] | Dataset | None = None,
                    input_shape: tuple[int, ...] | None = None, max_examples: int | None = None) -> Report:
    """Build a component through the registry and check every clause of its kind's contract.

    Raises ConformanceError naming the broken clause and the smallest failing example, or NotCheckable
    when the kit needs more (a required parameter, a weights file, a data set the metric accepts).
    ``data`` is the data set a metric is measured on (default: the first built-in one it accepts);
    ``input_shape`` the samples a discriminator or augmenter sees (default: read from the parameters
    ``channels`` and ``resolution``, or 3×16×16 images for an augmenter).
    """
    registry = registry or default_registry()
    spec = registry.get(kind, name)
    params = dict(params or {})
    try:
        validated = dict(registry.validate_params(kind, name, params))
    except ConfigError:
        required = [f for f, info in spec.params.model_fields.items() if info.is_required() and f not in params]
        if required:
            raise NotCheckable(f"{kind} {name!r} needs the parameter{'s' * (len(required) > 1)} "
                               f"{', '.join(required)}; pass params={{...}}") from None
        raise
    report = Report(f"{kind}:{name}", params)
    ck = Checker(report, max_examples or MAX_EXAMPLES[kind])
    make = _maker(registry, kind, name)
    if kind == "generator":
        for variant in _paths(registry, kind, name, params, validated, ck):
            check_generator(ck.variant(variant), make(variant))
    elif kind == "discriminator":
        shape = input_shape or _shape_of(validated, kind, name)
        for variant in _paths(registry, kind, name, params, validated, ck):
            check_discriminator(ck.variant(variant), make(variant), shape)
    elif kind == "loss":
        check_loss(ck, make(params))
    elif kind == "regularizer":
        check_regularizer(ck, make(params))
    elif kind == "augmenter":
        check_augmenter(ck, make(params), input_shape or AUGMENTER_INPUT)
    elif kind == "metric":
        metric = make(params)(0)
        dataset = data if isinstance(data, Dataset) else (
            registry.create("dataset", data[0], data[1]) if data is not None else choose_data(metric, registry))
        check_metric(ck, make(params), dataset)
    else:
        try:
            make(params)(0)
        except DataError as exc:
            raise NotCheckable(f"dataset {name!r} cannot be built from {params}: {exc}") from None
        check_dataset(ck, make(params))
    return report


def _maker(registry: Registry, kind: str, name: str) -> Callable[[dict[str, Any]], Callable[[int], Any]]:
    """For a parameter set, a function building the component afresh from a torch seed."""
    def with_params(params: dict[str, Any]) -> Callable[[int], Any]:
        def build(seed: int) -> Any:
            torch.manual_seed(seed)
            return registry.create(kind, name, params)
        return build
    return with_params


def _paths(registry: Registry, kind: str, name: str, params: dict[str, Any], validated: dict[str, Any],
           ck: Checker) -> Iterator[dict[str, Any]]:
    """The parameters as given, then the other of the conditional and unconditional paths when the
    network has a ``num_classes`` parameter that accepts it."""
    yield params
    if "num_classes" not in validated:
        return
    other = {**params, "num_classes": 0 if validated["num_classes"] else 3}
    try:
        registry.validate_params(kind, name, other)
    except ConfigError as exc:
        ck.note(f"num_classes={other['num_classes']} not checked: {exc}")
        return
    yield other


def _shape_of(validated: dict[str, Any], kind: str, name: str) -> tuple[int, ...]:
    """A network's sample shape from its ``channels`` and ``resolution`` parameters (resolution 0: points)."""
    if "channels" not in validated or "resolution" not in validated:
        raise NotCheckable(f"{kind} {name!r} has no channels and resolution parameters to read its input shape "
                           f"from; pass input_shape=(C, H, W)")
    c, r = validated["channels"], validated["resolution"]
    return (c, r, r) if r else (c,)
