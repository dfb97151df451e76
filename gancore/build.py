"""Building a recipe's components and checking that they fit together, before any run directory exists."""

from __future__ import annotations

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


def build(recipe: Recipe, registry: Registry) -> Parts:
    """Every component of the recipe, checked against each other."""
    nets = build_networks(recipe, registry)
    G = nets.generator
    data = _create(registry, "data", "dataset", recipe.data.name, recipe.data.params)
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
    metrics = []
    for i, ref in enumerate(recipe.metrics):
        metric = _create(registry, f"metrics[{i}]", "metric", ref.name, ref.params)
        try:
            metric.check(data)
        except ValueError as exc:
            problems.append(f"metrics[{i}].name = {show_value(ref.name)}: {exc}; this recipe's data is "
                            f"{recipe.data.name!r}")
        except WeightsNotFound as exc:
            problems.append(f"metrics[{i}].params.{exc.param}: {exc}")
        metrics.append((ref, metric))
    if problems:
        raise ConfigError(problems)
    return Parts(G, nets.discriminator, nets.regularizers, data, loss, augmenter, metrics)
