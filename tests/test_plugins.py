"""The registry's errors: each way a name or a plugin can go wrong gives one message saying what to do.

Plugins here are modules made in the test and registered through ``make_registry``; the import failure
goes through a real entry point of a fake installed distribution, as ``gancore`` meets it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from torch import Tensor, nn

from gancore import (
    CORE_API_VERSION,
    Augmenter,
    ConfigError,
    Loss,
    PluginError,
    Registry,
    UnknownComponentError,
    component,
    hookimpl,
)
from gancore.testing import make_registry

GANCORE = Path(sys.executable).with_name("gancore")
INCOMPATIBLE_ADVICE = (f"but this gancore provides API {CORE_API_VERSION}; install a release of the plugin made "
                       "for this gancore")


def make_loss(name: str) -> type[Loss]:
    """A distinct loss class registered as ``name`` (two plugins may each bring one under the same name)."""

    class ZeroLoss(Loss):
        """A loss that is always zero, standing in for a plugin's."""

        def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
            return (fake_logits - real_logits).mean() * 0

        def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
            return fake_logits.mean() * 0

    return component("loss", name)(ZeroLoss)


def make_augmenter(name: str) -> type[Augmenter]:
    """A distinct identity augmenter registered as ``name``."""

    class Identity(Augmenter):
        """Leaves images as they are."""

        def forward(self, x: Tensor) -> Tensor:
            return x

    return component("augmenter", name)(Identity)


def make_plugin(name: str, *components: Any, api: object = CORE_API_VERSION,
                hook: Callable[[], Sequence[Any]] | None = None) -> ModuleType:
    """A plugin module named ``name`` whose hook returns ``components`` (or is ``hook``); ``api=None`` omits it."""
    module = ModuleType(name)
    if api is not None:
        module.GANCORE_API_VERSION = api  # type: ignore[attr-defined]

    def gancore_components() -> Sequence[Any]:
        return list(components)

    module.gancore_components = hookimpl(hook or gancore_components)  # type: ignore[attr-defined]
    return module


def unknown(registry: Registry, kind: str, name: str) -> str:
    """The message of the error that looking ``name`` up raises."""
    with pytest.raises(UnknownComponentError) as caught:
        registry.get(kind, name)
    return str(caught.value)


# -- unknown names ---------------------------------------------------------------------------------


def test_unknown_name_gives_the_closest_names_and_the_kinds_list() -> None:
    losses = [make_loss(n) for n in ("hinge_a", "hinge_b", "wasser")]
    registry = make_registry(make_plugin("three_losses", *losses), builtins=False)
    message = unknown(registry, "loss", "hinge_c")
    close = re.match(r"no loss named 'hinge_c' is installed \(did you mean '(\w+)' or '(\w+)'\?\); ", message)
    assert close and set(close.groups()) == {"hinge_a", "hinge_b"}
    assert message.endswith(": hinge_a, hinge_b, wasser")
    far = unknown(registry, "loss", "xyz")
    assert "did you mean" not in far and far.endswith(": hinge_a, hinge_b, wasser")
    with pytest.raises(UnknownComponentError, match="no loss named 'hinge_c'"):
        registry.create("loss", "hinge_c")


def test_unknown_name_of_an_empty_kind_says_none_are_installed() -> None:
    assert unknown(make_registry(builtins=False), "augmenter", "ada").endswith(": (none)")


def test_unknown_name_among_the_builtins() -> None:
    registry = make_registry()
    message = unknown(registry, "regularizer", "wgan-gp")
    assert message.startswith("no regularizer named 'wgan-gp' is installed (did you mean 'wgan_gp'?); ")
    assert ", ".join(registry.names("regularizer")) in message


def test_unknown_name_points_to_plugins_that_failed() -> None:
    registry = make_registry(make_plugin("stale", make_loss("old_loss"), api=0), builtins=False)
    assert unknown(registry, "loss", "old_loss").endswith(
        "(plugins that failed to load: stale; see `gancore plugins`)"
    )


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(UnknownComponentError, match="unknown component kind 'losses'; kinds are generator, "
                                                    "discriminator, loss, regularizer, augmenter, metric, dataset"):
        make_registry(builtins=False).names("losses")


def test_bad_parameters_name_their_key_and_what_is_allowed() -> None:
    registry = make_registry(make_plugin("noise", make_augmenter("identity")), builtins=False)
    with pytest.raises(ConfigError, match=r"^params.gamma: unknown key; allowed keys: p$"):
        registry.create("augmenter", "identity", gamma=1.0)
    with pytest.raises(ConfigError, match=r'^params.p = "high": should be a valid number'):
        registry.create("augmenter", "identity", p="high")


def _window_fits(low: int, high: int) -> None:
    if low >= high:
        raise ValueError(f"low = {low} should be below high = {high}")


def test_a_check_of_parameters_together_is_reported_at_the_params_path() -> None:
    class Window(Augmenter):
        """Keeps pixels between two levels."""

        def __init__(self, low: int = 0, high: int = 1) -> None:
            super().__init__()
            self.low, self.high = low, high

        def forward(self, x: Tensor) -> Tensor:
            return x

    registry = make_registry(make_plugin("win", component("augmenter", "window", check=_window_fits)(Window)),
                             builtins=False)
    assert registry.create("augmenter", "window", low=1, high=3).high == 3
    with pytest.raises(ConfigError) as info:
        registry.validate_params("augmenter", "window", {"low": 3, "high": 2}, "augmenter")
    assert info.value.problems == ["augmenter.params: low = 3 should be below high = 2"]
    with pytest.raises(ConfigError) as info:  # field errors come first; the check runs only on valid fields
        registry.validate_params("augmenter", "window", {"low": "x", "high": 2}, "augmenter")
    assert info.value.problems == ['augmenter.params.low = "x": should be a valid integer, unable to parse string as '
                                   "an integer"]


# -- names registered twice ------------------------------------------------------------------------


def test_a_name_registered_by_two_plugins_is_refused_naming_both() -> None:
    first = make_plugin("plugin_a", make_loss("shared"), make_loss("only_a"))
    second = make_plugin("plugin_b", make_loss("shared"), make_augmenter("only_b"))
    registry = make_registry(first, second, builtins=False)
    message = "loss 'shared' is registered by 'plugin_a' and 'plugin_b'; uninstall all but one to use it"
    assert unknown(registry, "loss", "shared") == message
    assert registry.names("loss") == ["only_a"]
    for name in ("plugin_a", "plugin_b"):
        assert (registry.plugins[name].status, registry.plugins[name].error) == ("conflict", message)
    # a conflict is not a failure to load: unknown-name messages do not list these plugins as broken
    assert "failed to load" not in unknown(registry, "loss", "nope")
    # every other component of both plugins still works
    assert isinstance(registry.create("loss", "only_a"), Loss)
    assert isinstance(registry.create("augmenter", "only_b"), Augmenter)


def test_a_third_plugin_with_the_same_name_keeps_it_refused() -> None:
    plugins = [make_plugin(f"plugin_{c}", make_loss("shared")) for c in "abc"]
    message = unknown(make_registry(*plugins, builtins=False), "loss", "shared")
    assert message.startswith("loss 'shared' is registered by 'plugin_a', 'plugin_b' and 'plugin_c';")


@pytest.mark.parametrize("keep", ["plugin_a", "plugin_b"])
def test_the_name_works_once_one_plugin_is_removed(keep: str) -> None:
    plugin = make_plugin(keep, make_loss("shared"))
    registry = make_registry(plugin, builtins=False)
    assert registry.get("loss", "shared").plugin == keep
    assert isinstance(registry.create("loss", "shared"), Loss)


def test_a_builtin_name_taken_by_a_plugin_is_refused() -> None:
    registry = make_registry(make_plugin("squatter", make_loss("hinge")))
    assert unknown(registry, "loss", "hinge").startswith("loss 'hinge' is registered by 'gancore' and 'squatter'")
    assert "wasserstein" in registry.names("loss")


def test_two_plugins_of_one_name_are_refused() -> None:
    registry = make_registry(make_plugin("twice", make_loss("x")), make_plugin("twice", make_loss("y")),
                             builtins=False)
    second = registry.plugins["twice (unnamed)"]
    assert (second.status, second.error) == (
        "error", "the plugin name 'twice' is taken by another plugin; rename this plugin's entry point")
    assert registry.plugins["twice"].status == "ok"
    assert registry.names("loss") == ["x"]


# -- plugins that cannot be used -------------------------------------------------------------------


@pytest.mark.parametrize(("api", "stated"), [(CORE_API_VERSION + 1, f"was built for core API {CORE_API_VERSION + 1}"),
                                             (0, "was built for core API 0"),
                                             (None, "states no GANCORE_API_VERSION")],
                         ids=["newer", "older", "unstated"])
def test_a_plugin_for_another_core_api_is_incompatible(api: object, stated: str) -> None:
    called: list[bool] = []

    def hook() -> Sequence[Any]:
        called.append(True)
        return [make_loss("future_loss")]

    registry = make_registry(make_plugin("other_api", api=api, hook=hook))
    info = registry.plugins["other_api"]
    assert (info.status, info.error) == ("incompatible", f"{stated}, {INCOMPATIBLE_ADVICE}")
    assert info.components == [] and not called
    assert "future_loss" not in registry.names("loss") and "hinge" in registry.names("loss")


def _raise() -> Sequence[Any]:
    raise RuntimeError("weights file missing")


def _return_none() -> Sequence[Any]:
    return None  # type: ignore[return-value]


@pytest.mark.parametrize(("hook", "error"), [
    (_raise, "its gancore_components hook raised RuntimeError: weights file missing"),
    (_return_none, "its gancore_components hook returned None, not a list of components"),
], ids=["raises", "returns_none"])
def test_a_hook_that_fails_is_reported_and_the_rest_loads(hook: Callable[[], Sequence[Any]], error: str) -> None:
    later = make_plugin("later", make_loss("later_loss"))
    registry = make_registry(make_plugin("failing", hook=hook), later)
    assert (registry.plugins["failing"].status, registry.plugins["failing"].error) == ("error", error)
    assert registry.plugins["failing"].components == []
    assert registry.plugins["later"].status == "ok"
    assert {"hinge", "later_loss"} <= set(registry.names("loss"))


def test_a_hook_that_returns_a_non_component_registers_nothing_of_that_plugin() -> None:
    registry = make_registry(make_plugin("sloppy", make_loss("good_loss"), "not a component"), builtins=False)
    info = registry.plugins["sloppy"]
    assert info.status == "error"
    assert info.error == ("its gancore_components hook returned 'not a component', which is not a gancore "
                          "component; mark it with @gancore.component(kind, name)")
    assert registry.names("loss") == []


def test_a_plugin_without_the_hook_is_reported() -> None:
    hookless = ModuleType("hookless")
    hookless.GANCORE_API_VERSION = CORE_API_VERSION  # type: ignore[attr-defined]
    registry = make_registry(hookless, builtins=False)
    assert registry.plugins["hookless"].status == "error"
    assert registry.plugins["hookless"].error == "it implements no gancore_components hook"
    again = registry.register_plugin(ModuleType("hookless"), "hookless")
    assert again.error.startswith("the plugin name 'hookless' is taken by another plugin")


def test_a_hook_with_a_wrong_signature_is_reported() -> None:
    def gancore_components(registry: Registry) -> Sequence[Any]:
        return []

    registry = make_registry(make_plugin("odd", hook=gancore_components), builtins=False)
    assert registry.plugins["odd"].status == "error"
    assert registry.plugins["odd"].error.startswith("PluginValidationError: ")
    assert "registry" in registry.plugins["odd"].error


# -- factories that break their contract -----------------------------------------------------------


@component("loss", "liar")
def liar() -> object:
    """Claims to be a loss but builds a plain object."""
    return object()


@component("augmenter", "not_an_augmenter")
def plain_module() -> nn.Module:
    """Builds an nn.Module that is not a gancore Augmenter."""
    return nn.Identity()


@pytest.mark.parametrize(("kind", "name", "pattern"), [
    ("loss", "liar", r"^loss 'liar' from plugin 'liars' built an object of type object, which is not a gancore Loss$"),
    ("augmenter", "not_an_augmenter",
     r"^augmenter 'not_an_augmenter' from plugin 'liars' built an object of type Identity, "
     r"which is not a gancore Augmenter$"),
], ids=["loss", "augmenter"])
def test_a_factory_building_the_wrong_type_is_refused_at_create(kind: str, name: str, pattern: str) -> None:
    registry = make_registry(make_plugin("liars", liar, plain_module), builtins=False)
    assert registry.plugins["liars"].status == "ok"
    assert registry.get(kind, name).plugin == "liars"
    with pytest.raises(PluginError, match=pattern):
        registry.create(kind, name)


def test_component_refuses_an_unknown_kind_and_an_unannotated_parameter() -> None:
    with pytest.raises(ValueError, match="unknown component kind 'lost'; kinds are generator, "):
        component("lost", "x")(liar)

    def untyped(width=3) -> nn.Module:  # type: ignore[no-untyped-def]  # noqa: ANN001
        return nn.Identity()

    with pytest.raises(TypeError, match="generator:bare: parameter 'width' needs a type annotation"):
        component("generator", "bare")(untyped)


def test_make_registry_isolates_and_names_plugins() -> None:
    registry = make_registry(make_plugin("solo", make_loss("solo_loss")), builtins=False)
    assert list(registry.plugins) == ["solo"]
    assert registry.names("loss") == ["solo_loss"] and registry.names("dataset") == []
    with_builtins = make_registry()
    assert list(with_builtins.plugins) == ["gancore"]
    assert with_builtins.plugins["gancore"].distribution == "gancore"
    assert "hinge" in with_builtins.names("loss") and "solo_loss" not in with_builtins.names("loss")


def test_gancore_registry_fixture_is_make_registry(gancore_registry: Callable[..., Registry]) -> None:
    assert gancore_registry is make_registry


# -- through real entry points ---------------------------------------------------------------------

FAKE_DISTRIBUTIONS = {
    # distribution, version, entry-point name, module source
    "broken_plugin": ("broken-plugin", "1.0", "broken", 'raise RuntimeError("this plugin is broken on purpose")\n'),
    "fine_plugin": ("fine-plugin", "2.0", "fine", """
        from gancore import Loss, component, hookimpl

        GANCORE_API_VERSION = 2

        @component("loss", "fine_loss")
        class FineLoss(Loss):
            \"\"\"A loss from a plugin that loads.\"\"\"

            def discriminator_loss(self, real_logits, fake_logits):
                return fake_logits.mean() - real_logits.mean()

            def generator_loss(self, fake_logits, real_logits):
                return -fake_logits.mean()

        @hookimpl
        def gancore_components():
            return [FineLoss]
    """),
    "stale_plugin": ("stale-plugin", "0.5", "stale", """
        from gancore import Loss, component, hookimpl

        GANCORE_API_VERSION = 0

        @component("loss", "stale_loss")
        class StaleLoss(Loss):
            \"\"\"A loss from a plugin made for an older gancore.\"\"\"

        @hookimpl
        def gancore_components():
            return [StaleLoss]
    """),
}


CLI_GROUP = pytest.mark.xdist_group("plugin_cli")
"""Keeps the tests sharing the ``cli`` fixture on one xdist worker, so its commands run once."""


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding three installed distributions: one that fails to import, one fine, one stale."""
    site = tmp_path_factory.mktemp("fake_site")
    for module, (dist, version, entry, source) in FAKE_DISTRIBUTIONS.items():
        info = site / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[gancore]\n{entry} = {module}\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


@pytest.fixture(scope="module")
def cli(fake_site: Path) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """``gancore plugins``, ``list loss`` and ``show`` of a stale loss with the fake site on the path, at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["OMP_NUM_THREADS"] = "1"  # several run at once: no thread oversubscription
    env["PYTHONPATH"] = str(fake_site)
    todo = {"plugins": ["plugins"], "list": ["list", "loss"], "show": ["show", "loss", "stale_loss"]}
    with ThreadPoolExecutor(len(todo)) as pool:
        yield {name: pool.submit(subprocess.run, [str(GANCORE), *args], env=env, cwd=fake_site,
                                 capture_output=True, text=True, timeout=300) for name, args in todo.items()}


@CLI_GROUP
def test_gancore_plugins_reports_an_import_failure_and_loads_the_rest(
    cli: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    result = cli["plugins"].result()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    broken = lines.index("broken  [broken-plugin 1.0]  error")
    assert lines[broken + 1] == ("    error: failed to import broken_plugin: RuntimeError: this plugin is broken "
                                 "on purpose")
    fine = lines.index("fine  [fine-plugin 2.0]  ok")
    assert lines[fine + 1] == "    loss:fine_loss"
    stale = lines.index("stale  [stale-plugin 0.5]  incompatible")
    assert lines[stale + 1] == f"    error: was built for core API 0, {INCOMPATIBLE_ADVICE}"
    assert lines[0].startswith("gancore  [gancore ") and lines[0].endswith("]  ok")


@CLI_GROUP
def test_gancore_list_shows_the_loaded_plugins_only(cli: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    result = cli["list"].result()
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert rows["fine_loss"].endswith("A loss from a plugin that loads.  [fine]")
    assert rows["hinge"].endswith("[gancore]")
    assert "stale_loss" not in rows


@CLI_GROUP
def test_asking_for_a_component_of_a_failed_plugin_says_why(
    cli: dict[str, Future[subprocess.CompletedProcess[str]]],
) -> None:
    result = cli["show"].result()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: no loss named 'stale_loss' is installed")
    installed = result.stderr.split("; installed ", 1)[1].split(": ", 1)[1].split(" (plugins")[0].split(", ")
    assert {"fine_loss", "hinge"} <= set(installed) and "stale_loss" not in installed
    assert result.stderr.rstrip().endswith("(plugins that failed to load: broken, stale; see `gancore plugins`)")
