"""gancore's own components, registered through the same hook as any plugin's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore.builtin import datasets, losses, metrics, networks, regularizers
from gancore.hookspecs import CORE_API_VERSION, hookimpl

GANCORE_API_VERSION = CORE_API_VERSION


@hookimpl
def gancore_components() -> Sequence[Any]:
    return [*datasets.COMPONENTS, *losses.COMPONENTS, *metrics.COMPONENTS, *networks.COMPONENTS,
            *regularizers.COMPONENTS]
