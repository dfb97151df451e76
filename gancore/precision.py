"""Mixed precision: autocast for the forward passes, and the loss scale that fp16 needs.

Parameters, optimizer state and gradients stay float32 in every mode. bf16 has float32's range,
so it needs no scaling; R3GAN reports that fp16 breaks its training, so fp16 is offered only with
a dynamic loss scale (GradScaler's rule: halve on a non-finite gradient, double after a run of
clean steps).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """The context the networks' forward passes and the losses run in."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


class LossScale:
    """The factor losses are multiplied by before backward; 1 unless ``precision`` is fp16."""

    def __init__(self, precision: Precision, initial: float = 2.0**16, growth_interval: int = 2000) -> None:
        self.enabled = precision == "fp16"
        self.value = initial if self.enabled else 1.0
        self.growth_interval = growth_interval
        self.clean_steps = 0

    def overflowed(self) -> bool:
        """After a non-finite gradient: halve the scale; True if that explains the step (the scale was above 1)."""
        self.clean_steps = 0
        if not self.enabled or self.value <= 1.0:
            return False
        self.value /= 2
        return True

    def clean(self) -> None:
        """After a finite gradient: double the scale every ``growth_interval`` clean steps in a row."""
        if not self.enabled:
            return
        self.clean_steps += 1
        if self.clean_steps >= self.growth_interval:
            self.value *= 2
            self.clean_steps = 0

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "clean_steps": self.clean_steps}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])
        self.clean_steps = int(state["clean_steps"])
