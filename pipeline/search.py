"""The redesign search: KerasTuner over the declared design space, stopping at the goal.

KerasTuner alone stops when a trial count runs out. Here the oracle is wrapped so that the
search also ends cleanly when the goal is met on validation, when the wall-clock budget is
spent, or when the trial budget is used, whichever comes first, and its first trial is the
initial design (the defaults of every hyperparameter), so the search starts from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras_tuner as kt
from keras_tuner.src.engine import trial as trial_module

from pipeline.config import PipelineConfig
from pipeline.data import Schema
from pipeline.metrics import goal_met
from pipeline.models import compile_model
from pipeline.models.builder import build_model
from pipeline.models.cnn import max_blocks
from pipeline.training import GOAL_LOG_KEY, steps_per_epoch, training_callbacks


# ---------------------------------------------------------------- design space


def _choice(hp, name: str, values: list, default):
    """A Choice whose values include the default (the initial design is always in the space)."""
    values = list(dict.fromkeys([*values, default])) if default not in values else list(values)
    return hp.Choice(name, values, default=default)


class DesignHyperModel(kt.HyperModel):
    """Maps KerasTuner hyperparameters to a design dict and builds it with the shared builder."""

    def __init__(self, cfg: PipelineConfig, schema: Schema, preprocessing: dict, initial: dict, epochs: int):
        super().__init__(name="design")
        self.cfg, self.schema, self.preprocessing, self.initial, self.epochs = cfg, schema, preprocessing, initial, epochs
        self.n_train = 0

    def design_from(self, hp) -> dict:
        space, model_cfg = self.cfg.search.space, self.cfg.model
        families = self.cfg.search_families
        start = self.initial["family"] if self.initial["family"] in families else families[0]
        family = hp.Choice("family", families, default=start)
        family_cfg = getattr(model_cfg, family).model_dump()
        lr_default = min(max(self.cfg.train.learning_rate, space.learning_rate.min), space.learning_rate.max)
        common = {
            "learning_rate": hp.Float("learning_rate", space.learning_rate.min, space.learning_rate.max,
                                      sampling="log" if space.learning_rate.log else "linear", default=lr_default),
            "optimizer": _choice(hp, "optimizer", space.optimizer, self.cfg.train.optimizer),
            "batch_size": _choice(hp, "batch_size", space.batch_size, self.cfg.train.batch_size),
            "lr_schedule": self.cfg.train.lr_schedule,
        }
        # Scopes only for families in the space: KerasTuner activates every scope it sees.
        if "mlp" in families:
            with hp.conditional_scope("family", ["mlp"]):
                if family == "mlp":
                    default_layers = len(model_cfg.mlp.units)
                    layers = hp.Int("mlp_layers", min(space.mlp_layers.min, default_layers),
                                    max(space.mlp_layers.max, default_layers), default=default_layers)
                    base = _choice(hp, "mlp_units", space.mlp_units, model_cfg.mlp.units[0])
                    family_cfg["units"] = [max(8, base // 2**i) for i in range(layers)]
        if "cnn" in families:
            with hp.conditional_scope("family", ["cnn"]):
                if family == "cnn":
                    fit = max_blocks(self.schema.input_shape[:-1])
                    default_blocks = min(len(model_cfg.cnn.filters), fit)
                    blocks = hp.Int("cnn_blocks", min(space.cnn_blocks.min, default_blocks),
                                    min(max(space.cnn_blocks.max, default_blocks), fit), default=default_blocks)
                    base = _choice(hp, "cnn_filters", space.cnn_filters, model_cfg.cnn.filters[0])
                    family_cfg["filters"] = [base * 2**i for i in range(blocks)]
                    family_cfg["dense_units"] = _choice(hp, "dense_units", space.dense_units,
                                                        model_cfg.cnn.dense_units)
        family_cfg["activation"] = _choice(hp, "activation", space.activation, family_cfg["activation"])
        dropout_default = min(max(family_cfg["dropout"], space.dropout.min), space.dropout.max)
        family_cfg["dropout"] = hp.Float("dropout", space.dropout.min, space.dropout.max, default=dropout_default)
        family_cfg["batchnorm"] = bool(_choice(hp, "batchnorm", space.batchnorm, family_cfg["batchnorm"]))
        return {"family": family, "hyperparameters": {**family_cfg, **common}, "preprocessing": self.preprocessing}

    def build(self, hp):
        design = self.design_from(hp)
        model = build_model(design, self.schema, self.preprocessing)
        hparams = design["hyperparameters"]
        compile_model(model, self.schema.task, hparams, steps_per_epoch(self.n_train, hparams["batch_size"]), self.epochs)
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.get("batch_size"), **kwargs)


# ---------------------------------------------------------------- stopping


@dataclass
class Budget:
    """When the search must stop: goal met, wall clock spent, or trials used."""

    metric: str
    threshold: float
    max_trials: int
    deadline: float
    stop_on_goal: bool
    reason: str | None = None

    def stop_reason(self, oracle) -> str | None:
        finished = [t for t in oracle.trials.values() if t.status in ("COMPLETED", "FAILED", "INVALID")]
        if self.stop_on_goal:
            best = oracle.get_best_trials(1)
            if best and best[0].score is not None and goal_met(best[0].score, self.threshold, self.metric):
                return "goal met on validation"
        if time.monotonic() >= self.deadline:
            return "time budget spent"
        if len(finished) >= self.max_trials:
            return "trial budget spent"
        return None


class _GoalAwareOracle:
    """Mixed in front of a KerasTuner oracle: stops on the Budget, starts at the defaults."""

    budget: Budget
    _seeded = False

    def populate_space(self, trial_id):
        reason = self.budget.stop_reason(self)
        if reason:
            self.budget.reason = reason
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)

    def _random_values(self):
        if not self._seeded:
            self._seeded = True
            hps = kt.HyperParameters()
            for hp in self.hyperparameters.space:
                hps.merge([hp])
                if hps.is_active(hp):
                    hps.values[hp.name] = hp.default
            if not self._duplicate(hps.values):
                return hps.values
        return super()._random_values()


TUNERS = {
    "hyperband": (kt.oracles.HyperbandOracle, kt.Hyperband),
    "random": (kt.oracles.RandomSearchOracle, kt.RandomSearch),
    "bayesian": (kt.oracles.BayesianOptimizationOracle, kt.BayesianOptimization),
    "grid": (kt.oracles.GridSearchOracle, kt.GridSearch),
}


# ---------------------------------------------------------------- the search


def first_non_finite(values: list[float]) -> int | None:
    """1-based epoch of the first NaN/inf value, or None when all are finite."""
    return next((i + 1 for i, v in enumerate(values) if not math.isfinite(v)), None)


@dataclass
class TrialRecord:
    trial_id: str
    status: str
    score: float | None
    seconds: float
    hyperparameters: dict
    message: str = ""
    curves: dict = field(default_factory=dict)


@dataclass
class SearchResult:
    stop_reason: str
    trials: list[TrialRecord]
    best_hyperparameters: kt.HyperParameters | None
    best_score: float | None
    hypermodel: DesignHyperModel


def run_search(cfg: PipelineConfig, schema: Schema, splits: dict, initial: dict, directory: Path,
               on_trial_end=None) -> SearchResult:
    """Search the design space; `on_trial_end(TrialRecord)` is called after every trial."""
    search = cfg.search
    oracle_base, tuner_base = TUNERS[search.tuner]
    objective = kt.Objective(GOAL_LOG_KEY, direction=cfg.goal.direction)
    budget = Budget(cfg.goal.metric, cfg.goal.threshold, search.max_trials,
                    time.monotonic() + search.time_budget_s, search.stop_on_goal)
    oracle_kwargs = dict(objective=objective, seed=search.seed, max_retries_per_trial=0,
                         max_consecutive_failed_trials=search.max_trials + 1)
    if search.tuner == "hyperband":
        oracle_kwargs.update(max_epochs=search.max_epochs, factor=search.hyperband_factor)
    else:
        oracle_kwargs["max_trials"] = search.max_trials
    oracle = type(f"Goal{oracle_base.__name__}", (_GoalAwareOracle, oracle_base), {})(**oracle_kwargs)
    oracle.budget = budget

    hypermodel = DesignHyperModel(cfg, schema, initial["preprocessing"], initial, search.max_epochs)
    hypermodel.n_train = len(splits["train"][0])
    records: list[TrialRecord] = []
    started: dict[str, float] = {}

    class _Tuner(tuner_base):
        def __init__(self, **kwargs):
            kt.Tuner.__init__(self, **kwargs)  # the base tuners' __init__ only builds their own oracle

        def run_trial(self, trial, *args, **kwargs):
            histories = super().run_trial(trial, *args, **kwargs)
            for history in histories if isinstance(histories, list) else [histories]:
                diverged_at = first_non_finite(history.history.get("loss", []))
                if diverged_at is not None:
                    # Recorded as FAILED (not INVALID), and the search goes on with the next trial.
                    raise kt.errors.FailedTrialError(f"training diverged: loss not finite at epoch {diverged_at}")
            return histories

        def on_trial_begin(self, trial):
            started[trial.trial_id] = time.monotonic()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            record = TrialRecord(
                trial_id=trial.trial_id, status=str(trial.status), score=trial.score,
                message=(trial.message or "").strip().splitlines()[-1:][0] if trial.message else "",
                seconds=round(time.monotonic() - started.get(trial.trial_id, time.monotonic()), 2),
                hyperparameters=dict(trial.hyperparameters.values),
                curves={name: [float(sum(o.value) / len(o.value)) for o in trial.metrics.get_history(name)]
                        for name in trial.metrics.metrics},
            )
            records.append(record)
            best = self.oracle.get_best_trials(1)
            best_score = best[0].score if best else None
            shown = ", ".join(f"{k}={v}" for k, v in record.hyperparameters.items() if not k.startswith("tuner/"))
            print(f"redesign: trial {len(records)} [{record.status}] {cfg.goal.metric}="
                  f"{record.score if record.score is None else round(record.score, 4)} "
                  f"(best {best_score if best_score is None else round(best_score, 4)}) "
                  f"in {record.seconds} s: {shown}" + (f" ({record.message})" if record.message else ""), flush=True)
            if on_trial_end:
                on_trial_end(record)

    tuner = _Tuner(oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name="search",
                   overwrite=True)
    callbacks = training_callbacks(cfg.goal, *splits["validation"], patience=cfg.train.early_stopping_patience,
                                   deadline=budget.deadline)
    tuner.search(*splits["train"], validation_data=splits["validation"], epochs=search.max_epochs,
                 callbacks=callbacks, verbose=0)
    best = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED" and t.score is not None]
    # KerasTuner's own max_trials check may end the loop before our budget is asked.
    reason = budget.reason or budget.stop_reason(oracle) or "search space exhausted"
    return SearchResult(
        stop_reason=reason,
        trials=records,
        best_hyperparameters=best[0].hyperparameters if best else None,
        best_score=best[0].score if best else None,
        hypermodel=hypermodel,
    )
