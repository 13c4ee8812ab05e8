"""Design families and the shared parts around them (preprocessing in, task head out).

A *design* is a plain dict: ``{"family": "cnn", "hyperparameters": {...}}``. The same dict
comes from the config (initial design), from a KerasTuner trial (redesign) or from disk, and
:func:`build_model` turns it into an uncompiled Keras model whose first layers apply the input
scaling fitted on the training split, so an exported model accepts raw inputs.
"""

from pipeline.models.builder import DesignError, build_model, compile_model, layer_table, load_model, max_depth

__all__ = ["DesignError", "build_model", "compile_model", "layer_table", "load_model", "max_depth"]
