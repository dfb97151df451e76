"""Turning pydantic's validation errors into one line per problem: key path, bad value, what is allowed."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def key_path(prefix: str, loc: Sequence[int | str]) -> str:
    """``("regularizers", 1, "params")`` under prefix "" → ``regularizers[1].params``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_validation_error(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """One readable line per error in ``exc``, raised while validating ``model``."""
    lines = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        loc = err["loc"]
        # an unknown key may be spelt like a union tag: keep the last element of its path as written
        loc = _strip_union_tags(loc[:-1]) + loc[-1:] if kind == "extra_forbidden" else _strip_union_tags(loc)
        path = key_path(prefix, loc)
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            lines.append(f"{path}: unknown key; allowed keys: {', '.join(allowed) or '(none)'}")
        elif kind == "missing":
            lines.append(f"{path}: required key is missing")
        elif not loc:  # a check of several keys together: the message names them
            lines.append(f"{path}: {err['msg'].replace('Value error, ', '')}")
        else:
            msg = err["msg"].replace("Value error, ", "").replace("Input should be", "should be")
            lines.append(f"{path} = {show_value(err.get('input'))}: {msg}")
    return lines


def show_value(value: Any) -> str:
    """A value as the user wrote it in YAML (JSON spelling: true, null, "text")."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _strip_union_tags(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """pydantic adds the tried member's name (``Schedule``, ``float``) to union paths; users never wrote it."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in _SCALAR_TAGS or "[" in p)))


_SCALAR_TAGS = {"float", "int", "str", "bool", "none", "function-before", "function-after", "function-plain"}


def _allowed_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any, part: int | str) -> Any:
    """The type one step further along a path: a field of a model, or the item type of a list."""
    for candidate in _members(annotation):
        if isinstance(part, int) and typing.get_origin(candidate) in (list, tuple):
            return typing.get_args(candidate)[0]
        if isinstance(part, str) and isinstance(candidate, type) and issubclass(candidate, BaseModel):
            field = candidate.model_fields.get(part)
            if field is not None:
                return field.annotation
    return None


def _members(annotation: Any) -> list[Any]:
    """The alternatives of an Optional/Union/Annotated annotation, or the annotation itself."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]
