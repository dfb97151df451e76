"""An example gancore plugin: the module its entry point names, with the API version and the hook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gancore import hookimpl

from gancore_plugin_example.augment import GaussianNoise
from gancore_plugin_example.losses import RelativisticHingeLoss

GANCORE_API_VERSION = 2
"""The core API this release was written against; gancore refuses the plugin if its own differs."""


@hookimpl
def gancore_components() -> Sequence[Any]:
    """The components this plugin adds to the registry."""
    return [RelativisticHingeLoss, GaussianNoise]
