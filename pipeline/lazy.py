"""Keras and scikit-learn's metrics, imported on first use.

The modules that declare designs (the config schema, the model families, the tasks) refer to
Keras at module level but only call it when a model is built, so the stages that never build
one (goal, prepare, split, report) start without loading Keras and its backend; the stages that
never score predictions start without scikit-learn (about a second each).
"""

from __future__ import annotations

import importlib.util
import sys


def lazy_import(name: str):
    """The module `name`, loaded when one of its attributes is first read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


class Deferred:
    """A submodule imported when one of its attributes is first read. (LazyLoader cannot defer
    a submodule: finding it imports its package, which is the slow part for scikit-learn.)"""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


keras = lazy_import("keras")
sklearn_metrics = Deferred("sklearn.metrics")
scipy_optimize = Deferred("scipy.optimize")
