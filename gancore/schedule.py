"""Hyper-parameters that follow a schedule over training (R3GAN's burn-in)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


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


def within(ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """Bounds for a ``Scheduled`` parameter, checked on both ends of the schedule.

    Use as ``gamma: Annotated[Scheduled, within(ge=0)] = 1.0``.
    """
    bounds = [(ge, "greater than or equal to", float.__ge__), (gt, "greater than", float.__gt__),
              (le, "less than or equal to", float.__le__), (lt, "less than", float.__lt__)]

    def check(schedule: Schedule) -> Schedule:
        for limit, words, holds in bounds:
            if limit is None:
                continue
            for end in (schedule.start, schedule.end):
                if not holds(float(end), float(limit)):
                    raise ValueError(f"should be {words} {limit:g} (start and end of a schedule alike)")
        return schedule

    return AfterValidator(check)
