"""gancore: a plugin-based registry of GAN components for PyTorch."""

from gancore.components import ComponentSpec, component
from gancore.errors import ConfigError, DataError, GancoreError, PluginError, UnknownComponentError
from gancore.evaluation import Evaluation, FeatureExtractor, Features
from gancore.hookspecs import CORE_API_VERSION, hookimpl
from gancore.interfaces import (
    Augmenter,
    Dataset,
    Discriminator,
    Generator,
    Loss,
    Metric,
    PenaltyContext,
    Regularizer,
)
from gancore.registry import Registry, create, default_registry, list_components
from gancore.schedule import Schedule, Scheduled, within

__all__ = [
    "CORE_API_VERSION", "Augmenter", "ComponentSpec", "ConfigError", "DataError", "Dataset", "Discriminator",
    "Evaluation", "FeatureExtractor", "Features", "GancoreError", "Generator", "Loss", "Metric", "PenaltyContext",
    "PluginError", "Registry", "Regularizer", "Schedule", "Scheduled", "UnknownComponentError", "component",
    "create", "default_registry", "hookimpl", "list_components", "within",
]
