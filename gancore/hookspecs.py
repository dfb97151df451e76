"""The hooks a gancore plugin implements (pluggy), and the markers to implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pluggy

PROJECT = "gancore"
CORE_API_VERSION = 2
"""Bumped when an interface changes incompatibly (2: ``Metric.compute`` takes an ``Evaluation``); a plugin states the version it was built for
as ``GANCORE_API_VERSION`` in the module its entry point names."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gancore_components() -> Sequence[Any]:
    """Return the components this plugin provides: objects marked with ``@gancore.component``."""
