"""The design space as KerasTuner hyperparameters, and back to designs.

A round searches a :class:`~pipeline.designs.DesignSpace` (declared in conf/, reshaped by the
diagnosis between rounds) starting from `defaults`: the initial design's values in round 1,
the best design's so far later. Family-specific hyperparameters live in a conditional scope
of `family`, and depth ranges are capped so that no design collapses the input.
"""

from __future__ import annotations

import keras_tuner as kt

from pipeline import inputs
from pipeline.config import Choice, FloatRange, IntRange, PipelineConfig
from pipeline.config.space import BatchSize
from pipeline.designs import Design, DesignSpace, family_key
from pipeline.models.builder import build_model
from pipeline.models.registry import family as family_named
from pipeline.schema import Schema
from pipeline.training import Deadline, compile_model, schedule_callbacks, start_second_phase, steps_per_epoch


def fitting_families(space: DesignSpace, input_shape: list[int]) -> list[str]:
    """The space's families that can build at least their shallowest design for this input."""
    fits = []
    for name in space.families:
        cap = family_named(name).depth_limit(input_shape)
        if cap is None or cap >= 1:
            fits.append(name)
    return fits


class DesignHyperModel(kt.HyperModel):
    """Builds the design a trial's hyperparameters describe, with the shared model builder."""

    def __init__(self, cfg: PipelineConfig, schema: Schema, preprocessing: dict, space: DesignSpace,
                 defaults: dict, epochs: int, n_train: int, clipnorm: float | None = None):
        super().__init__(name="design")
        self.cfg, self.schema, self.preprocessing = cfg, schema, preprocessing
        self.space, self.defaults = space, defaults
        self.families = fitting_families(space, schema.input_shape)
        self.epochs, self.n_train, self.clipnorm = epochs, n_train, clipnorm

    def _declare(self, hp, name: str, spec, cap: int | None = None):
        default = self.defaults.get(name, spec.for_rows(self.n_train) if isinstance(spec, BatchSize) else spec.default)
        if isinstance(spec, Choice):
            values = list(spec.choices)
            return hp.Choice(name, values, default=default if default in values else spec.default)
        if isinstance(spec, IntRange):
            high = spec.max if cap is None else max(1, min(spec.max, cap))
            low = min(spec.min, high)
            return hp.Int(name, low, high, default=min(max(int(default), low), high))
        if isinstance(spec, FloatRange):
            if spec.min == spec.max:
                return hp.Fixed(name, spec.min)
            return hp.Float(name, spec.min, spec.max, sampling="log" if spec.log else "linear",
                            default=spec.clamp(default))
        raise TypeError(f"{name}: unsupported range {spec!r}")

    def values_from(self, hp) -> dict:
        """Declare (or read) every hyperparameter of the space; returns the trial's values."""
        default_family = self.defaults.get("family")
        chosen = hp.Choice("family", self.families,
                           default=default_family if default_family in self.families else self.families[0])
        values = {"family": chosen}
        for name in self.families:
            family_space = self.space.per_family[name]
            declared = family_named(name)
            cap = declared.depth_limit(self.schema.input_shape)
            # Scopes only for families in the space: KerasTuner activates every scope it sees.
            with hp.conditional_scope("family", [name]):
                for field in type(family_space).model_fields:
                    key = family_key(name, field)
                    value = self._declare(hp, key, getattr(family_space, field), cap if field == declared.depth else None)
                    if name == chosen:
                        values[key] = value
        for group in (self.space.common, self.space.training):
            for field in type(group).model_fields:
                values[field] = self._declare(hp, field, getattr(group, field))
        values["augment"] = bool(self._declare(hp, "augment", self.space.augment)) if self.space.augment else False
        return values

    def design_from(self, hp) -> Design:
        return Design.from_values(self.values_from(hp), self.cfg.augment.settings(self.cfg.train.seed),
                                  self.preprocessing, self.clipnorm)

    def build(self, hp):
        """The design's training view, compiled: what the tuner fits (it shares the exported model's weights)."""
        design = self.design_from(hp)
        view = self.schema.task.training_view(build_model(design, self.schema))
        hyper = design.hyperparameters
        compile_model(view, self.schema.task, hyper, steps_per_epoch(self.n_train, hyper["batch_size"]),
                      self.epochs, self.cfg.goal.metric)
        return view

    def fit(self, hp, model, x, y, callbacks=None, validation_data=None, **kwargs):
        train, task = self.cfg.train, self.schema.task
        schedule = schedule_callbacks({"lr_schedule": hp.get("lr_schedule")}, self.cfg.goal,
                                      train.early_stopping_patience, train.early_stopping_monitor)
        if validation_data is not None:
            validation_data = (validation_data[0], task.training_targets(validation_data[1], self.preprocessing))
        targets = task.training_targets(y, self.preprocessing)
        callbacks = [*(callbacks or []), *schedule]
        history = inputs.fit(model, x, targets, hp.get("batch_size"), callbacks=callbacks, seed=train.seed,
                             validation_data=validation_data, **kwargs)
        ran = len(history.history.get("loss", []))
        if not ran or any(isinstance(c, Deadline) and c.hit for c in callbacks):
            return history
        design = self.design_from(hp)
        # Phase 2 (fine-tuning a pretrained backbone), its epochs numbered on from phase 1's.
        tune = start_second_phase(model, model, design.family, design.hyperparameters, task, self.n_train,
                                  self.cfg.goal.metric)
        if tune is None:
            return history
        more = inputs.fit(model, x, targets, hp.get("batch_size"), callbacks=callbacks, seed=train.seed,
                          validation_data=validation_data, **{**kwargs, "epochs": ran + tune.epochs,
                                                              "initial_epoch": ran})
        for key, values in more.history.items():
            history.history[key] = list(history.history.get(key, [])) + list(values)
        history.epoch = list(history.epoch) + list(more.epoch)
        return history
