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
from pipeline.files import write_json
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
        write_json(path, self.to_dict())

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
    def from_config(cls, cfg: PipelineConfig, body_kind: str | None = None, train_rows: int = 0) -> DesignSpace:
        """The space of the config's searched families, for what the body reads (see Schema.body_kind);
        an `auto` batch size is searched within a factor 2 of its pick for `train_rows` rows."""
        body_kind = body_kind or cfg.body_kinds()[0]
        families = tuple(cfg.search_families_for(body_kind))
        for name in families:
            check_reads(name, body_kind)
        common = cfg.model.common
        if body_kind != "tabular":  # only table numbers are encoded: nothing to search elsewhere
            encoding = common.numeric_encoding
            common = common.model_copy(update={"numeric_encoding": encoding.model_copy(
                update={"choices": [encoding.default]})})
        training = cfg.training_space()
        if training.batch_size.default == "auto" and train_rows:
            pick = training.batch_size.for_rows(train_rows)
            near = [b for b in training.batch_size.choices if pick / 2 <= b <= pick * 2]
            training = training.model_copy(update={"batch_size": training.batch_size.model_copy(
                update={"choices": near, "default": pick})})
        return cls(families, common, training,
                   {f: cfg.model.family_space(f) for f in families},
                   cfg.augment.enabled if cfg.augment.available_for(body_kind) else None)

    def replace(self, **changes) -> DesignSpace:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict, cfg: PipelineConfig) -> DesignSpace:
        """The space `to_dict` wrote (the config gives each family's space type)."""
        families = tuple(data["families"])
        return cls(families, type(cfg.model.common).model_validate(data["common"]),
                   type(cfg.train.space()).model_validate(data["training"]),
                   {f: type(cfg.model.family_space(f)).model_validate(data[f]) for f in families},
                   None if data.get("augment") is None else Choice.model_validate(data["augment"]))

    def to_dict(self) -> dict:
        return {"families": list(self.families), "common": self.common.model_dump(mode="json"),
                "training": self.training.model_dump(mode="json"),
                "augment": None if self.augment is None else self.augment.model_dump(mode="json"),
                **{f: s.model_dump(mode="json") for f, s in self.per_family.items()}}


def check_reads(family_name: str, body_kind: str) -> None:
    """Refuse a family the user named that cannot read what the body gets (e.g. text as an n-gram bag)."""
    from pipeline.errors import DesignError
    from pipeline.models.registry import family

    if body_kind not in family(family_name).reads:
        hint = " (the text is read as an n-gram bag; -S data.text.representation=sequence reads word ids)" \
            if body_kind == "ngrams" else ""
        raise DesignError(f"{family_name} cannot read {body_kind} input{hint}")


def initial_design(cfg: PipelineConfig, body_kind: str | None = None, train_rows: int = 0) -> Design:
    """The design the config declares: every default of the initial family, shared and training
    choices; an `auto` batch size is chosen for `train_rows` training rows."""
    body_kind = body_kind or cfg.body_kinds()[0]
    name = cfg.initial_family(body_kind)
    check_reads(name, body_kind)
    values = {**cfg.initial_values(body_kind), "batch_size": cfg.train.batch_size.for_rows(train_rows)}
    return Design(name, values, cfg.augment.settings(cfg.train.seed))


def preprocessing_stats(x_train, y_train: np.ndarray, schema: Schema, target_transform: str = "auto") -> dict:
    """Statistics the model's preprocessing layers and head need, from the training split only."""
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
        if schema.input_kind == "tabular":
            stats["bins"] = quantile_edges(x_train)
    stats.update(schema.task.target_statistics(y_train, target_transform))
    return stats


QUANTILE_BINS = 16


def quantile_edges(x_train: np.ndarray, bins: int = QUANTILE_BINS) -> list[list[float]]:
    """Per numeric column, `bins` + 1 bin edges at quantiles of the training values; a column with
    fewer distinct quantiles (few values) gets evenly spaced edges between its least and greatest."""
    edges = []
    for column in np.asarray(x_train, dtype="float64").T:
        quantiles = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)))
        if len(quantiles) < bins + 1:
            low, high = column.min(), column.max()
            quantiles = np.linspace(low, high if high > low else low + 1.0, bins + 1)
        edges.append(quantiles.tolist())
    return edges
