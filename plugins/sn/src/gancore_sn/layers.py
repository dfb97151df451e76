"""What the plugin's regularizers share: their parameter types, and choosing layers and parameters by glob patterns."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

import torch
from gancore import GancoreError
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils import parametrize

NetworkName = Literal["generator", "discriminator"]

Targets = Annotated[list[NetworkName], Field(min_length=1, description="the networks to act on")]
Include = Annotated[list[str], Field(
    min_length=1, description="glob patterns (fnmatch; * also crosses dots) on layer names as named_modules() gives "
    "them, e.g. 'blocks.0.*'; a layer is chosen when one matches")]
Exclude = Annotated[list[str], Field(description="glob patterns on layer names; a layer one matches is left alone")]

LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear,
    nn.Embedding,
)
"""The layers whose weight the plugin normalises or initialises."""

TRANSPOSED: tuple[type[nn.Module], ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
"""Layers whose weight holds the output channels in dim 1, not dim 0."""

_STORED = re.compile(r"(^|\.)parametrizations\.([^.]+)\.original$")


class LayerError(GancoreError, ValueError):
    """A regularizer cannot act on a network as asked (no layer matches, a layer is already normalised).

    A ValueError, and a GancoreError so that gancore's command line reports it in one line, not as a traceback.
    """


def distinct_targets(targets: list[NetworkName], **_: Any) -> None:
    """Refuse a network named twice in ``targets`` (a build-time change would be attached to it twice)."""
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValueError(f"targets names {' and '.join(repr(t) for t in twice)} more than once")


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether ``name`` matches one of the glob ``patterns`` (case-sensitive; ``*`` also crosses dots)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def select_layers(network: nn.Module, include: Sequence[str], exclude: Sequence[str],
                  who: str) -> list[tuple[str, nn.Module]]:
    """The conv, linear and embedding layers of ``network`` named by ``include`` and not by ``exclude``.

    Raises LayerError naming the patterns and the network's candidate layers when none is chosen: a recipe whose
    patterns select nothing is a mistake, not a request to do nothing.
    """
    candidates = [(name, module) for name, module in network.named_modules() if isinstance(module, LAYERS)]
    chosen = [(name, module) for name, module in candidates if matches(name, include) and not matches(name, exclude)]
    if not chosen:
        names = [name for name, _ in candidates]
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise LayerError(f"{who}: no layer of {type(network).__name__} matches include {list(include)} and not "
                         f"exclude {list(exclude)}; its conv, linear and embedding layers are: {shown or '(none)'}")
    return chosen


def raw_weight(name: str, layer: nn.Module, who: str) -> Tensor:
    """The weight tensor ``layer`` stores: its ``weight`` parameter, or ``parametrizations.weight.original`` under a
    parametrization (spectral_norm's), which is what an initialisation must write to and a penalty act on.

    Raises LayerError when there is no such single tensor: a weight that several stored tensors make up (weight
    norm), or one that a forward hook recomputes (the old ``torch.nn.utils.spectral_norm``).
    """
    if parametrize.is_parametrized(layer, "weight"):
        stored = layer.parametrizations["weight"]
        if not hasattr(stored, "original"):
            parts = ", ".join(n for n, _ in stored.named_parameters(recurse=False))
            raise LayerError(f"{who}: the weight of layer {name!r} is made of several stored tensors ({parts}); "
                             f"there is no single raw weight to act on")
        return stored.original
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, nn.Parameter):
        raise LayerError(f"{who}: the weight of layer {name!r} is not a parameter of the layer (a hook such as the "
                         f"old torch.nn.utils.spectral_norm's computes it); there is no raw weight to act on")
    return weight


def plain_name(name: str) -> str:
    """A parameter's name as if it were not parametrized: ``a.parametrizations.weight.original`` → ``a.weight``."""
    return _STORED.sub(lambda m: f"{m.group(1)}{m.group(2)}", name)


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Autocast switched off on ``device``, so that σ and the penalty are computed in the weights' own dtype.

    The meta device has no autocast to switch off (networks are built there to count their parameters).
    """
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
