"""Designs as data: the design space, the initial design, and training-split statistics.

A design is ``{"family", "hyperparameters", "augmentation"}``: `hyperparameters` is one flat
dict (shared layer choices, training choices, `augment`, and the family's own values), which
is what the builders read. A search trial names the same values with family-specific ones
prefixed (`cnn_blocks`, `rnn_units`, ...) so that families never share a hyperparameter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from pydantic import BaseModel

from pipeline.config import Choice, CommonSpace, FamilySpace, PipelineConfig, TrainingSpace
from pipeline.data import Schema


@dataclasses.dataclass(frozen=True)
class DesignSpace:
    """What a round may search: families, shared layer choices, training choices, augmentation."""

    families: tuple[str, ...]
    common: CommonSpace
    training: TrainingSpace
    per_family: dict[str, FamilySpace]
    augment: Choice | None = None  # None: no augmentation for this input kind

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> DesignSpace:
        families = tuple(cfg.search_families)
        return cls(families, cfg.model.common, cfg.train.space(), {f: getattr(cfg.model, f) for f in families},
                   cfg.augment.enabled if cfg.augment.available_for(cfg.data.input_kind) else None)

    def replace(self, **changes) -> DesignSpace:
        return dataclasses.replace(self, **changes)

    def with_family(self, family: str, **updates) -> DesignSpace:
        """A copy with some of one family's ranges/choices replaced."""
        per_family = dict(self.per_family)
        per_family[family] = per_family[family].model_copy(update=updates)
        return self.replace(per_family=per_family)

    def to_dict(self) -> dict:
        return {"families": list(self.families), "common": self.common.model_dump(mode="json"),
                "training": self.training.model_dump(mode="json"),
                "augment": None if self.augment is None else self.augment.model_dump(mode="json"),
                **{f: s.model_dump(mode="json") for f, s in self.per_family.items()}}


def defaults(space: BaseModel) -> dict:
    """Each range's or choice's default: the values of the initial design."""
    return {name: getattr(space, name).default for name in type(space).model_fields}


def family_key(family: str, name: str) -> str:
    return f"{family}_{name}"


SHARED = frozenset({*CommonSpace.model_fields, *TrainingSpace.model_fields, "augment"})


def values_of(design: dict) -> dict:
    """A design written as search hyperparameter values (family-specific names prefixed)."""
    family = design["family"]
    values = {"family": family}
    for name, value in design["hyperparameters"].items():
        if name in SHARED:
            values[name] = value
        elif name != "clipnorm":
            values[family_key(family, name)] = value
    return values


def design_of(values: dict, augmentation: dict, clipnorm: float | None = None) -> dict:
    """The design a trial's hyperparameter values describe."""
    family = values["family"]
    prefix = family_key(family, "")
    hp = {name: value for name, value in values.items() if name in SHARED}
    hp.update({name.removeprefix(prefix): value for name, value in values.items() if name.startswith(prefix)})
    if clipnorm:
        hp["clipnorm"] = clipnorm
    return {"family": family, "hyperparameters": hp, "augmentation": augmentation}


def augmentation_settings(cfg: PipelineConfig) -> dict:
    return {**cfg.augment.model_dump(exclude={"enabled"}), "seed": cfg.train.seed}


def initial_design(cfg: PipelineConfig) -> dict:
    """The design the config declares: every default of the initial family, shared and training choices."""
    family = cfg.family
    hp = {**defaults(cfg.model.common), **defaults(cfg.train.space()), **defaults(getattr(cfg.model, family)),
          "augment": bool(cfg.augment.enabled.default) and cfg.augment.available_for(cfg.data.input_kind)}
    return {"family": family, "hyperparameters": hp, "augmentation": augmentation_settings(cfg)}


def preprocessing_stats(x_train: np.ndarray, y_train: np.ndarray, schema: Schema) -> dict:
    """Statistics the model's preprocessing layers need, from the training split only."""
    stats: dict = {}
    if isinstance(x_train, dict):  # a table with categorical/text columns: only the numeric block is scaled
        x_train = x_train.get("numeric")
    if schema.scaling["kind"] == "standardize" and x_train is not None:
        # Per feature (last axis): columns of a table, features of a sequence, channels of an image.
        axes = tuple(range(x_train.ndim - 1))
        variance = x_train.var(axis=axes)
        stats["mean"] = x_train.mean(axis=axes).astype(float).tolist()
        # A constant feature would divide by zero; give it unit variance.
        stats["variance"] = np.where(variance > 0, variance, 1.0).astype(float).tolist()
    if schema.task == "regression":
        stats["target_mean"] = float(y_train.mean())
        stats["target_std"] = float(y_train.std() or 1.0)
    return stats
