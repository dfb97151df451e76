"""Helpers for testing plugins, also installed as a pytest plugin: the fixture ``gancore_registry``, the
conformance kit's ``check_component``, and the option ``--gancore-conformance DIST``."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from gancore.conformance import ConformanceError, NotCheckable, check_component, components_of, examples
from gancore.errors import ConfigError
from gancore.registry import Registry, builtin_registry, default_registry

__all__ = ["check_component", "gancore_registry", "make_registry"]


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("gancore").addoption(
        "--gancore-conformance", action="append", default=[], metavar="DIST",
        help="also run the conformance kit on every component of an installed plugin, named by its distribution "
             "(gancore-plugin-x) or entry point; repeatable")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add one test per component and example of each plugin named by ``--gancore-conformance``."""
    plugins = config.getoption("gancore_conformance")
    if not plugins:
        return
    registry = default_registry()
    for plugin in plugins:
        try:
            found = components_of(registry, plugin)
        except Exception as exc:
            raise pytest.UsageError(f"--gancore-conformance {plugin}: {exc}") from None
        for kind, name in found:
            for i, params in enumerate(examples(registry, kind, name)):
                items.append(ConformanceItem.from_parent(session, name=f"conformance::{kind}:{name}[{i}]",
                                                         kind=kind, component=name, params=params))


class ConformanceItem(pytest.Item):
    """The conformance kit run on one component with one of its example parameter sets."""

    def __init__(self, *, kind: str, component: str, params: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind, self.component, self.params = kind, component, params

    def runtest(self) -> None:
        try:
            check_component(self.kind, self.component, self.params)
        except NotCheckable as exc:
            pytest.skip(f"not checkable: {exc}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformanceError):
            return str(excinfo.value)
        if isinstance(excinfo.value, ConfigError):  # the plugin's own declared example does not validate
            return f"the example's parameters are refused: {excinfo.value}"
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return "gancore-conformance", None, f"{self.kind}:{self.component} {self.params}"
