"""The design space: KerasTuner hyperparameters <-> design dicts.

A round searches a :class:`SearchSpace` (declared in conf/, reshaped by diagnosis between
rounds) starting from `defaults`: the initial design in round 1, the best design so far later.
"""

from __future__ import annotations

import keras_tuner as kt

from pipeline.config import FloatRange, IntRange, PipelineConfig, SearchSpace
from pipeline.data import Schema
from pipeline.models import build_model, compile_model
from pipeline.models.cnn import max_blocks
from pipeline.training import steps_per_epoch

LIST_FIELDS = ("optimizer", "batch_size", "activation", "batchnorm", "initializer", "l2",
               "mlp_units", "cnn_filters", "dense_units")


def initial_defaults(cfg: PipelineConfig, design: dict) -> dict:
    """The initial design written as search hyperparameter values."""
    hp = design["hyperparameters"]
    values = {
        "family": design["family"], "learning_rate": hp["learning_rate"], "optimizer": hp["optimizer"],
        "batch_size": hp["batch_size"], "activation": hp["activation"], "dropout": hp["dropout"],
        "batchnorm": hp["batchnorm"], "initializer": hp["initializer"], "l2": hp["l2"],
    }
    if design["family"] == "mlp":
        values.update(mlp_layers=len(hp["units"]), mlp_units=hp["units"][0])
    else:
        values.update(cnn_blocks=len(hp["filters"]), cnn_filters=hp["filters"][0], dense_units=hp["dense_units"])
    return values


def space_containing(space: SearchSpace, values: dict) -> SearchSpace:
    """`space` widened just enough to hold `values` (the initial design is always searchable)."""
    update: dict = {}
    for name in LIST_FIELDS:
        if name in values and values[name] not in getattr(space, name):
            update[name] = [*getattr(space, name), values[name]]
    for name in ("learning_rate", "dropout", "mlp_layers", "cnn_blocks"):
        if name in values:
            current = getattr(space, name)
            low, high = min(current.min, values[name]), max(current.max, values[name])
            update[name] = current.model_copy(update={"min": low, "max": high})
    return space.model_copy(update=update)


def _clip(value, low, high):
    return min(max(value, low), high)


class DesignHyperModel(kt.HyperModel):
    """Builds the design a trial's hyperparameters describe, with the shared model builder."""

    def __init__(self, cfg: PipelineConfig, schema: Schema, preprocessing: dict, space: SearchSpace,
                 defaults: dict, families: list[str], epochs: int, n_train: int, clipnorm: float | None = None):
        super().__init__(name="design")
        self.cfg, self.schema, self.preprocessing = cfg, schema, preprocessing
        self.space, self.defaults, self.families = space, defaults, families
        self.epochs, self.n_train, self.clipnorm = epochs, n_train, clipnorm

    def _choice(self, hp, name: str):
        values = list(getattr(self.space, name))
        default = self.defaults.get(name)
        return hp.Choice(name, values, default=default if default in values else values[0])

    def _int(self, hp, name: str, rng: IntRange, cap: int | None = None):
        high = min(rng.max, cap) if cap else rng.max
        low = min(rng.min, high)
        return hp.Int(name, low, high, default=_clip(self.defaults.get(name, low), low, high))

    def _float(self, hp, name: str, rng: FloatRange):
        return hp.Float(name, rng.min, rng.max, sampling="log" if rng.log else "linear",
                        default=_clip(self.defaults.get(name, rng.min), rng.min, rng.max))

    def design_from(self, hp) -> dict:
        families = self.families
        default_family = self.defaults.get("family")
        family = hp.Choice("family", families, default=default_family if default_family in families else families[0])
        hyper = getattr(self.cfg.model, family).model_dump()
        # Scopes only for families in the space: KerasTuner activates every scope it sees.
        if "mlp" in families:
            with hp.conditional_scope("family", ["mlp"]):
                if family == "mlp":
                    layers = self._int(hp, "mlp_layers", self.space.mlp_layers)
                    base = self._choice(hp, "mlp_units")
                    hyper["units"] = [max(8, base // 2**i) for i in range(layers)]
        if "cnn" in families:
            with hp.conditional_scope("family", ["cnn"]):
                if family == "cnn":
                    fit = max_blocks(self.schema.input_shape[:-1])
                    blocks = self._int(hp, "cnn_blocks", self.space.cnn_blocks, cap=fit)
                    base = self._choice(hp, "cnn_filters")
                    hyper["filters"] = [base * 2**i for i in range(blocks)]
                    hyper["dense_units"] = self._choice(hp, "dense_units")
        hyper["activation"] = self._choice(hp, "activation")
        hyper["initializer"] = self._choice(hp, "initializer")
        hyper["l2"] = float(self._choice(hp, "l2"))
        hyper["dropout"] = self._float(hp, "dropout", self.space.dropout)
        hyper["batchnorm"] = bool(self._choice(hp, "batchnorm"))
        hyper.update(
            learning_rate=self._float(hp, "learning_rate", self.space.learning_rate),
            optimizer=self._choice(hp, "optimizer"),
            batch_size=self._choice(hp, "batch_size"),
            lr_schedule=self.cfg.train.lr_schedule,
        )
        if self.clipnorm:
            hyper["clipnorm"] = self.clipnorm
        return {"family": family, "hyperparameters": hyper, "preprocessing": self.preprocessing}

    def build(self, hp):
        design = self.design_from(hp)
        model = build_model(design, self.schema, self.preprocessing)
        hyper = design["hyperparameters"]
        compile_model(model, self.schema.task, hyper, steps_per_epoch(self.n_train, hyper["batch_size"]),
                      self.epochs, self.cfg.goal.metric)
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)
