"""The one validated schema for everything in conf/ (and so in params.yaml).

- space.py: the search-space primitives (IntRange, FloatRange, Choice) the sections and families use
- splits.py: the split kinds, one class each
- sections.py: the sections (goal, data, split, model, train, augment, search, tracking)
- loading.py: composing conf/ with Hydra, reading params.yaml, and phrasing errors

Every stage loads its settings through :func:`load_config`; a bad key or value fails there,
before any data is touched, with a message naming the key, the bad value and what is allowed.

The names below are loaded on first use (PEP 562): the model families import space.py, and the
model section is built from the families, so importing this package must not build it first.
"""

import importlib

_HOMES = {
    "errors": ("ConfigError", "KeyProblem"),
    "loading": ("compose_params", "load_config", "validate_config", "write_params"),
    "sections": ("BUILTIN_SOURCES", "FILE_SOURCES", "TABLE_SOURCES", "AugmentConfig", "CommonSpace", "ComputeConfig",
                 "DataConfig",
                 "DiagnosisConfig", "GoalConfig", "ModelConfig", "PipelineConfig", "SearchConfig", "TrackingConfig",
                 "TrainConfig", "TrainingSpace"),
    "space": ("Choice", "FamilySpace", "FloatRange", "IntRange", "defaults"),
    "splits": ("SPLIT_KINDS", "SplitSettings"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'pipeline.config' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pipeline.config.{_MODULE_OF[name]}"), name)
