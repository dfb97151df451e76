"""Hyper-parameters that follow a schedule over training (R3GAN's burn-in)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


class Schedule(BaseModel):
    """A value that moves from ``start`` to ``end`` over ``burn_in_kimg`` and then holds.

    ``cosine`` follows R3GAN's burn-in: v = start + (1 − ½(1 + cos(π·t))) · (end − start)
    with t the fraction of the burn-in done; ``linear`` moves at a constant rate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float
    end: float
    burn_in_kimg: float = Field(0.0, ge=0)
    shape: Literal["cosine", "linear"] = "cosine"

    def __call__(self, kimg: float) -> float:
        if self.burn_in_kimg == 0 or kimg >= self.burn_in_kimg:
            return self.end
        t = max(kimg, 0.0) / self.burn_in_kimg
        ramp = t if self.shape == "linear" else 1 - 0.5 * (1 + math.cos(math.pi * t))
        return self.start + ramp * (self.end - self.start)

    @classmethod
    def constant(cls, value: float) -> Schedule:
        return cls(start=value, end=value)


def _from_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number or a schedule {start, end, burn_in_kimg, shape}, not a boolean")
    if isinstance(value, int | float):
        return Schedule.constant(float(value))
    if isinstance(value, dict | Schedule):
        return value
    raise ValueError("expected a number or a schedule {start, end, burn_in_kimg, shape}")


Scheduled = Annotated[Schedule, BeforeValidator(_from_number, json_schema_input_type=float | Schedule)]
"""A parameter that takes a number or a ``Schedule``; components receive a callable ``Schedule``."""


@dataclass(frozen=True)
class within:  # noqa: N801 - used like pydantic's own lower-case constraint markers
    """Bounds for a ``Scheduled`` parameter, checked on both ends of a schedule and shown in its JSON Schema.

    Use as ``gamma: Annotated[Scheduled, within(ge=0)] = 1.0``.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    _TESTS = (("ge", "greater than or equal to", "minimum", float.__ge__),
              ("gt", "greater than", "exclusiveMinimum", float.__gt__),
              ("le", "less than or equal to", "maximum", float.__le__),
              ("lt", "less than", "exclusiveMaximum", float.__lt__))

    def _limits(self) -> list[tuple[float, str, str, Any]]:
        return [(getattr(self, key), words, keyword, holds) for key, words, keyword, holds in self._TESTS
                if getattr(self, key) is not None]

    def check(self, schedule: Schedule) -> Schedule:
        for limit, words, _, holds in self._limits():
            if not all(holds(float(end), float(limit)) for end in (schedule.start, schedule.end)):
                raise ValueError(f"should be {words} {limit:g} (start and end of a schedule alike)")
        return schedule

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """A bounded number, or a schedule whose start and end are bounded alike."""
        bounds = {keyword: limit for limit, _, keyword, _ in self._limits()}
        number, schedule = handler(schema)["anyOf"]
        ends = {"properties": {"start": bounds, "end": bounds}}
        return {"anyOf": [{**number, **bounds}, {"allOf": [schedule, ends]}]}
