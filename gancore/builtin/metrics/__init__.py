"""Built-in metrics: mode coverage (2-D toys, stacked digits) and the feature-space distances papers report."""

from __future__ import annotations

from gancore.builtin.metrics import image_metrics
from gancore.builtin.metrics.backbone import FD
from gancore.builtin.metrics.mixture import MixtureModes
from gancore.builtin.metrics.stacked import StackedDigitsModes

COMPONENTS = [MixtureModes, StackedDigitsModes, *image_metrics.COMPONENTS, FD]
