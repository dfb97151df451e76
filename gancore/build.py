"""Building a recipe's components and checking that they fit together, before any run directory exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from gancore.errors import ConfigError
from gancore.interfaces import Augmenter, Dataset, Discriminator, Generator, Loss, Metric, Regularizer
from gancore.recipe import MetricRef, Recipe
from gancore.registry import Registry
from gancore.validation import show_value
from gancore.weights import WeightsNotFound


@dataclass
class Networks:
    """A recipe's generator and discriminator, with the regularizers' build-time changes applied."""

    generator: Generator
    discriminator: Discriminator
    regularizers: list[Regularizer]


@dataclass
class Parts(Networks):
    """Every component of a run."""

    dataset: Dataset
    loss: Loss
    augmenter: Augmenter | None
    metrics: list[tuple[MetricRef, Metric]]


def _create(registry: Registry, path: str, kind: str, name: str, params: dict[str, Any]) -> Any:
    """Build one component; a ValueError from its constructor becomes a problem at its key path."""
    try:
        return registry.create(kind, name, params)
    except ValueError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None


def build_networks(recipe: Recipe, registry: Registry) -> Networks:
    """G and D from the recipe (initialised under its seed), with their regularizers attached."""
    torch.manual_seed(recipe.seed)
    G = _create(registry, "generator", "generator", recipe.generator.name, recipe.generator.params)
    D = _create(registry, "discriminator", "discriminator", recipe.discriminator.name, recipe.discriminator.params)
    regs = [_create(registry, f"regularizers[{i}]", "regularizer", r.name, r.params)
            for i, r in enumerate(recipe.regularizers)]
    if G.num_classes != D.num_classes:
        raise ConfigError([f"generator.params.num_classes = {G.num_classes} and discriminator.params.num_classes = "
                           f"{D.num_classes}: G and D must be conditioned on the same classes"])
    for reg in regs:
        for target in reg.targets:
            reg.attach(G if target == "generator" else D)
    probe = torch.zeros(2, *G.output_shape)
    labels = torch.zeros(2, dtype=torch.long) if G.num_classes else None
    with torch.no_grad():
        logits = D.eval()(probe, labels)
    D.train()
    if tuple(logits.shape) != (2,):
        raise ConfigError([f"discriminator.name = {show_value(recipe.discriminator.name)}: on a batch of 2 samples shaped "
                           f"{G.output_shape} it returned logits of shape {tuple(logits.shape)}, not (2,)"])
    return Networks(G, D, regs)


def build_data(recipe: Recipe, registry: Registry) -> Dataset:
    """The recipe's data set."""
    return _create(registry, "data", "dataset", recipe.data.name, recipe.data.params)


def build_metrics(registry: Registry, refs: list[MetricRef], data: Dataset, path: Callable[[int], str]
                  ) -> tuple[list[tuple[MetricRef, Metric]], list[tuple[int, str | None, str]]]:
    """The metrics (built at ``path(i)`` for errors), each checked against the data, and their problems as
    (index, the parameter at fault or None for the metric itself, message): data it cannot measure, or weights
    it cannot find. Callers say where, in a recipe or on the command line."""
    metrics, problems = [], []
    for i, ref in enumerate(refs):
        metric = _create(registry, path(i), "metric", ref.name, ref.params)
        try:
            metric.check(data)
        except ValueError as exc:
            problems.append((i, None, str(exc)))
        except WeightsNotFound as exc:
            problems.append((i, exc.param, str(exc)))
        metrics.append((ref, metric))
    return metrics, problems


def build(recipe: Recipe, registry: Registry) -> Parts:
    """Every component of the recipe, checked against each other."""
    nets = build_networks(recipe, registry)
    G = nets.generator
    data = build_data(recipe, registry)
    problems = []
    if tuple(data.shape) != G.output_shape:
        problems.append(f"generator: makes samples shaped {G.output_shape} but data {recipe.data.name!r} has "
                        f"items shaped {tuple(data.shape)}; set the generator's resolution and channels to match")
    if G.num_classes and G.num_classes != data.num_classes:
        problems.append(f"generator.params.num_classes = {G.num_classes}: data {recipe.data.name!r} has "
                        f"{data.num_classes} classes (use 0 for an unconditional model)")
    if len(data) < recipe.train.batch_size:
        problems.append(f"train.batch_size = {recipe.train.batch_size}: larger than the data set "
                        f"({len(data)} items)")
    loss = _create(registry, "loss", "loss", recipe.loss.name, recipe.loss.params)
    augmenter = None
    if recipe.augmenter is not None:
        augmenter = _create(registry, "augmenter", "augmenter", recipe.augmenter.name, recipe.augmenter.params)
    metrics, found = build_metrics(registry, recipe.metrics, data, lambda i: f"metrics[{i}]")
    for i, param, message in found:
        problems.append(f"metrics[{i}].params.{param}: {message}" if param else
                        f"metrics[{i}].name = {show_value(recipe.metrics[i].name)}: {message}; this recipe's data "
                        f"is {recipe.data.name!r}")
    if problems:
        raise ConfigError(problems)
    return Parts(G, nets.discriminator, nets.regularizers, data, loss, augmenter, metrics)
