"""Designs as data: the initial design from the config, and training-split statistics."""

from __future__ import annotations

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.data import Schema

TRAINING_KEYS = ("optimizer", "learning_rate", "lr_schedule", "batch_size")


def initial_design(cfg: PipelineConfig) -> dict:
    """The design the config declares: family hyperparameters plus the training choices."""
    family = cfg.family
    hyperparameters = getattr(cfg.model, family).model_dump()
    hyperparameters.update({k: getattr(cfg.train, k) for k in TRAINING_KEYS})
    return {"family": family, "hyperparameters": hyperparameters}


def preprocessing_stats(x_train: np.ndarray, y_train: np.ndarray, schema: Schema) -> dict:
    """Statistics the model's preprocessing layers need, from the training split only."""
    stats: dict = {}
    if schema.scaling["kind"] == "standardize":
        stats["mean"] = x_train.mean(axis=0).astype(float).tolist()
        # A constant column would divide by zero; give it unit variance.
        stats["variance"] = np.where(x_train.var(axis=0) > 0, x_train.var(axis=0), 1.0).astype(float).tolist()
    if schema.task == "regression":
        stats["target_mean"] = float(y_train.mean())
        stats["target_std"] = float(y_train.std() or 1.0)
    return stats
