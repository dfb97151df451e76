"""The registry of components, filled by pluggy plugins found through entry points."""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import pluggy
from pydantic import BaseModel, ValidationError

from gancore import hookspecs
from gancore.components import ComponentSpec, spec_of
from gancore.errors import ConfigError, PluginError, UnknownComponentError
from gancore.interfaces import KINDS
from gancore.validation import describe_validation_error

ENTRY_POINT_GROUP = "gancore"


@dataclass
class PluginInfo:
    """What ``gancore plugins`` reports about one plugin."""

    name: str
    version: str = ""
    distribution: str = ""
    status: Literal["ok", "error", "incompatible", "conflict"] = "ok"
    error: str = ""
    components: list[str] = field(default_factory=list)


class Registry:
    """Components by kind and name, and the plugins that provided them.

    A plugin that fails to import, declares another core API version, or raises in
    its hook is recorded with its error; every other plugin still registers. A name
    registered by two plugins is unusable until one is removed, and says so.
    """

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._specs: dict[tuple[str, str], ComponentSpec] = {}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self.plugins: dict[str, PluginInfo] = {}

    # -- filling ---------------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every installed plugin advertised under the entry-point group."""
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist
            info = PluginInfo(ep.name, dist.version if dist else "", dist.name if dist else "")
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure of third-party code is reported, not raised
                self._fail(info, "error", f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            self.register_plugin(plugin, info)

    def register_plugin(self, plugin: ModuleType | object, info: PluginInfo | str) -> PluginInfo:
        """Register one plugin object (usually a module with a ``gancore_components`` hookimpl).

        Problems are recorded on the returned ``PluginInfo`` (and in ``plugins``), never raised.
        """
        if isinstance(info, str):
            info = PluginInfo(info)
        if info.name in self.plugins:
            taken = self.plugins[info.name].distribution
            by = f"the distribution {taken!r}" if taken else "another plugin"
            return self._fail(info, "error", f"the plugin name {info.name!r} is taken by {by}; "
                                             f"rename this plugin's entry point")
        api = getattr(plugin, "GANCORE_API_VERSION", None)
        if api != hookspecs.CORE_API_VERSION:
            stated = "states no GANCORE_API_VERSION" if api is None else f"was built for core API {api!r}"
            return self._fail(
                info,
                "incompatible",
                f"{stated}, but this gancore provides API {hookspecs.CORE_API_VERSION}; "
                f"install a release of the plugin made for this gancore",
            )
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as exc:
            return self._fail(info, "error", f"{type(exc).__name__}: {exc}")
        impls = [i for i in self._pm.hook.gancore_components.get_hookimpls() if i.plugin is plugin]
        if not impls:
            self._pm.unregister(plugin)
            return self._fail(info, "error", "it implements no gancore_components hook")
        try:
            returned = [impl.function() for impl in impls]
        except Exception as exc:  # third-party code: reported, not raised
            self._pm.unregister(plugin)
            return self._fail(info, "error", f"its gancore_components hook raised {type(exc).__name__}: {exc}")
        try:
            specs = [spec for r in returned for spec in self._specs_from(r)]
        except PluginError as exc:
            self._pm.unregister(plugin)
            return self._fail(info, "error", f"its gancore_components hook {exc}")
        self.plugins[info.name] = info
        for spec in specs:
            self._add(ComponentSpec(**{**spec.__dict__, "plugin": info.name}), info)
        return info

    @staticmethod
    def _specs_from(returned: Any) -> list[ComponentSpec]:
        """The specs of what a hook returned: an iterable of ``@component`` objects."""
        if returned is None or isinstance(returned, str | bytes) or not hasattr(returned, "__iter__"):
            raise PluginError(f"returned {returned!r}, not a list of components")
        specs = []
        for obj in returned:
            try:
                specs.append(spec_of(obj))
            except TypeError as exc:
                raise PluginError(f"returned {exc}") from None
        return specs

    def _fail(self, info: PluginInfo, status: Literal["error", "incompatible"], error: str) -> PluginInfo:
        info.status, info.error = status, error
        key = info.name if info.name not in self.plugins else f"{info.name} ({info.distribution or 'unnamed'})"
        self.plugins[key] = info
        return info

    def _add(self, spec: ComponentSpec, info: PluginInfo) -> None:
        key = (spec.kind, spec.name)
        info.components.append(f"{spec.kind}:{spec.name}")
        if key in self._specs:
            self._conflicts[key] = [self._specs.pop(key).plugin]
        if key not in self._conflicts:
            self._specs[key] = spec
            return
        self._conflicts[key].append(spec.plugin)
        owners = self._conflicts[key]
        message = f"{spec.kind} {spec.name!r} is registered by {_join(owners)}; uninstall all but one to use it"
        for owner in owners:
            self.plugins[owner].status = "conflict"
            self.plugins[owner].error = message

    # -- finding ---------------------------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Names of the usable components of one kind, sorted."""
        _check_kind(kind)
        return sorted(name for k, name in self._specs if k == kind)

    def list(self, kind: str | None = None) -> list[ComponentSpec]:
        """Usable components, of one kind or of all, sorted by kind then name."""
        kinds = [kind] if kind else list(KINDS)
        return [self._specs[(k, n)] for k in kinds for n in self.names(k)]

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec of one component; an unknown or ambiguous name raises with what to do."""
        _check_kind(kind)
        key = (kind, name)
        if key in self._specs:
            return self._specs[key]
        raise UnknownComponentError(self.unknown_message(kind, name))

    def unknown_message(self, kind: str, name: str) -> str:
        """Why ``name`` is not a usable component of ``kind``, and what is available instead."""
        if (kind, name) in self._conflicts:
            return f"{kind} {name!r} is registered by {_join(self._conflicts[(kind, name)])}; uninstall all but one to use it"
        names = self.names(kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        text = f"no {kind} named {name!r} is installed"
        if close:
            text += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
        text += f"; installed {_plural(kind)}: {', '.join(names) if names else '(none)'}"
        broken = [p.name for p in self.plugins.values() if p.status in ("error", "incompatible")]
        if broken:
            text += f" (plugins that failed to load: {', '.join(broken)}; see `gancore plugins`)"
        return text

    def validate_params(self, kind: str, name: str, params: Mapping[str, Any] | None, path: str = "") -> BaseModel:
        """Check ``params`` against the component's own model; errors name the key path."""
        spec = self.get(kind, name)
        try:
            return spec.params.model_validate(dict(params or {}))
        except ValidationError as exc:
            prefix = f"{path}.params" if path else "params"
            raise ConfigError(describe_validation_error(exc, spec.params, prefix)) from None

    def create(self, kind: str, name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Build a component from its name and parameters (a mapping, keywords or both)."""
        spec = self.get(kind, name)
        built = spec.build(self.validate_params(kind, name, {**(params or {}), **kwargs}))
        interface = KINDS[kind]
        if not isinstance(built, interface):
            raise PluginError(
                f"{kind} {name!r} from plugin {spec.plugin!r} built an object of type {type(built).__name__}, "
                f"which is not a gancore {interface.__name__}"
            )
        return built


def _join(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else quoted[0]


def _plural(kind: str) -> str:
    return kind + ("es" if kind.endswith("s") else "s")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownComponentError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")


def builtin_registry() -> Registry:
    """A registry holding gancore's own components only, registered as the plugin ``gancore``."""
    from gancore import builtin

    registry = Registry()
    registry.register_plugin(builtin, PluginInfo("gancore", _own_version(), "gancore"))
    return registry


@functools.lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry: gancore's built-ins, then every installed plugin."""
    registry = builtin_registry()
    registry.load_entry_points()
    return registry


def _own_version() -> str:
    try:
        return importlib.metadata.version("gancore")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def list_components(kind: str | None = None) -> list[str]:
    """Names of installed components of ``kind`` (all kinds as ``kind:name`` when None)."""
    registry = default_registry()
    if kind:
        return registry.names(kind)
    return [f"{s.kind}:{s.name}" for s in registry.list()]


def create(kind: str, name: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """Build an installed component, as ``create("loss", "hinge")``."""
    return default_registry().create(kind, name, params, **kwargs)
