"""Declaring a component: the ``@component`` decorator and the parameter model it derives."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from gancore.interfaces import KINDS

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ComponentSpec:
    """Everything the registry knows about one component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel]
    description: str
    plugin: str = ""
    examples: tuple[dict[str, Any], ...] = ()
    """Small parameter sets the conformance kit builds the component with (none: its defaults)."""

    def build(self, params: BaseModel) -> Any:
        """Call the factory with validated parameters (nested models such as schedules stay objects)."""
        return self.factory(**dict(params))


def component(
    kind: str, name: str, description: str | None = None, check: Callable[..., None] | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
) -> Callable[[F], F]:
    """Mark a class or function as the component ``name`` of ``kind``.

    Its parameters are those of its signature (``__init__`` for a class): each needs a
    type annotation, ``Annotated[..., pydantic.Field(...)]`` adds constraints and a
    description, and a default makes it optional. The description defaults to the first
    line of the docstring. ``check`` receives the validated parameters as keywords and raises
    ValueError when they do not fit together (a recipe's validation reports it). ``examples`` are small
    parameter sets for the conformance kit (``gancore check``), which otherwise builds the defaults. A
    plugin's ``gancore_components`` hook returns the marked objects.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")

    def mark(factory: F) -> F:
        first_paragraph = (inspect.getdoc(factory) or "").strip().split("\n\n")[0]
        text = description if description is not None else " ".join(first_paragraph.split())
        spec = ComponentSpec(kind, name, factory, params_model(factory, f"{kind}:{name}", check), text,
                             examples=tuple(dict(e) for e in examples))
        factory.__gancore_component__ = spec  # type: ignore[attr-defined]
        return factory

    return mark


def params_model(factory: Callable[..., Any], title: str, check: Callable[..., None] | None = None) -> type[BaseModel]:
    """A pydantic model of the factory's keyword parameters; unknown keys are rejected, ``check`` runs last."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(target, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(target).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.name not in hints:
            raise TypeError(f"{title}: parameter {param.name!r} needs a type annotation")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints[param.name], default)
    doc = (inspect.getdoc(factory) or "").strip()
    validators = {}
    if check is not None:
        def check_together(model: BaseModel) -> BaseModel:
            check(**dict(model))
            return model

        validators["check_together"] = model_validator(mode="after")(check_together)
    config = ConfigDict(extra="forbid", title=title, validate_default=True)
    return create_model(title, __config__=config, __doc__=doc or None, __validators__=validators, **fields)


def spec_of(obj: Any) -> ComponentSpec:
    """The spec of an object marked with ``@component``."""
    spec = getattr(obj, "__gancore_component__", None)
    if not isinstance(spec, ComponentSpec):
        raise TypeError(f"{obj!r}, which is not a gancore component; mark it with @gancore.component(kind, name)")
    return spec
