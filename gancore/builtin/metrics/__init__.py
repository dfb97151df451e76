"""Built-in metrics: the 2-D toys' mode coverage, and the feature-space distances papers report."""

from __future__ import annotations

from gancore.builtin.metrics.mixture import MixtureModes

COMPONENTS = [MixtureModes]
