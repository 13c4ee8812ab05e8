"""Keras, imported on first use (the standard library's LazyLoader recipe).

The modules that declare designs (the config schema, the model families, the tasks) refer to
Keras at module level but only call it when a model is built, so the stages that never build
one (goal, prepare, split, report) start without loading Keras and its backend.
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


keras = lazy_import("keras")
