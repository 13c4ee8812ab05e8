"""Designs as data: a :class:`Design` record, the :class:`DesignSpace` a search round may try, and
the training-split statistics the model's preprocessing layers need.

A design's `hyperparameters` is one flat dict (shared layer choices, training choices,
`augment`, and the family's own values), which is what the builders read. A search trial names
the same values with family-specific ones prefixed (`cnn_blocks`, `rnn_units`, ...) so that
families never share a hyperparameter; :meth:`Design.values` and :meth:`Design.from_values`
convert between the two.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import Choice, CommonSpace, FamilySpace, PipelineConfig, TrainingSpace
from pipeline.schema import Schema

ENSEMBLE = "ensemble"
SHARED = frozenset({*CommonSpace.model_fields, *TrainingSpace.model_fields, "augment"})


def family_key(family: str, name: str) -> str:
    return f"{family}_{name}"


@dataclass
class Design:
    """One architecture with its training choices; an ensemble holds its members instead."""

    family: str
    hyperparameters: dict = field(default_factory=dict)
    augmentation: dict = field(default_factory=dict)  # the transforms' strengths (used when `augment` is on)
    preprocessing: dict = field(default_factory=dict)  # training-split statistics for the input/output layers
    members: list[Design] = field(default_factory=list)
    note: str | None = None  # why the design differs from what the config asked for
    params: int | None = None

    @property
    def is_ensemble(self) -> bool:
        return self.family == ENSEMBLE

    @classmethod
    def ensemble(cls, members: list[Design]) -> Design:
        return cls(ENSEMBLE, members=list(members))

    def values(self) -> dict:
        """The design as search hyperparameter values (family-specific names prefixed)."""
        if self.is_ensemble:
            return {"family": ENSEMBLE, "members": len(self.members)}
        values = {"family": self.family}
        for name, value in self.hyperparameters.items():
            if name in SHARED:
                values[name] = value
            elif name != "clipnorm":
                values[family_key(self.family, name)] = value
        return values

    @classmethod
    def from_values(cls, values: dict, augmentation: dict, preprocessing: dict | None = None,
                    clipnorm: float | None = None) -> Design:
        """The design a trial's hyperparameter values describe."""
        family = values["family"]
        prefix = family_key(family, "")
        hp = {name: value for name, value in values.items() if name in SHARED}
        hp.update({name.removeprefix(prefix): value for name, value in values.items() if name.startswith(prefix)})
        if clipnorm:
            hp["clipnorm"] = clipnorm
        return cls(family, hp, augmentation, dict(preprocessing or {}))

    def with_hyperparameters(self, **changes) -> Design:
        return dataclasses.replace(self, hyperparameters={**self.hyperparameters, **changes})

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["members"] = [m.to_dict() for m in self.members]
        return {k: v for k, v in data.items() if v not in (None, [], {}) or k in ("family", "hyperparameters")}

    @classmethod
    def from_dict(cls, data: dict) -> Design:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["members"] = [cls.from_dict(m) for m in data.get("members", [])]
        return cls(**values)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=float) + "\n")

    @classmethod
    def load(cls, path: Path) -> Design:
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
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
        return cls(families, cfg.model.common, cfg.train.space(),
                   {f: cfg.model.family_space(f) for f in families},
                   cfg.augment.enabled if cfg.augment.available_for(cfg.data.input_kind) else None)

    def replace(self, **changes) -> DesignSpace:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {"families": list(self.families), "common": self.common.model_dump(mode="json"),
                "training": self.training.model_dump(mode="json"),
                "augment": None if self.augment is None else self.augment.model_dump(mode="json"),
                **{f: s.model_dump(mode="json") for f, s in self.per_family.items()}}


def initial_design(cfg: PipelineConfig) -> Design:
    """The design the config declares: every default of the initial family, shared and training choices."""
    return Design(cfg.family, cfg.initial_values(), cfg.augment.settings(cfg.train.seed))


def preprocessing_stats(x_train, y_train: np.ndarray, schema: Schema) -> dict:
    """Statistics the model's preprocessing layers need, from the training split only."""
    stats: dict = {}
    if isinstance(x_train, dict):  # a table with categorical/text columns: only the numeric block is scaled
        x_train = x_train.get("numeric")
    if schema.scaling.kind == "standardize" and x_train is not None:
        # Per feature (last axis): columns of a table, features of a sequence, channels of an image.
        axes = tuple(range(x_train.ndim - 1))
        variance = x_train.var(axis=axes)
        stats["mean"] = x_train.mean(axis=axes).astype(float).tolist()
        # A constant feature would divide by zero; give it unit variance.
        stats["variance"] = np.where(variance > 0, variance, 1.0).astype(float).tolist()
    stats.update(schema.task.target_statistics(y_train))
    return stats
