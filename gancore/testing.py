"""Helpers for testing plugins, also installed as a pytest plugin (fixture ``gancore_registry``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from gancore.registry import Registry, builtin_registry


def make_registry(*plugins: ModuleType | object, builtins: bool = True) -> Registry:
    """A fresh registry with gancore's built-ins (unless ``builtins=False``) and ``plugins``, ignoring entry points.

    Each plugin is named by its ``__name__`` (a module's dotted name) or else its type's name. A plugin
    that fails to register is recorded in ``registry.plugins`` with its error, as ``gancore plugins`` shows it.
    """
    registry = builtin_registry() if builtins else Registry()
    for plugin in plugins:
        registry.register_plugin(plugin, getattr(plugin, "__name__", None) or type(plugin).__name__)
    return registry


@pytest.fixture
def gancore_registry() -> Callable[..., Registry]:
    """The factory ``make_registry``: ``gancore_registry(my_plugin)`` gives a registry isolated from other tests."""
    return make_registry
