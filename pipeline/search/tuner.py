"""One round of search: KerasTuner, stopped by the goal, the clock or the trial budget.

KerasTuner alone stops when a trial count runs out. Here its oracle is wrapped so that a round
also ends cleanly when the goal is met on validation or the wall-clock deadline passes, and its
first trial is the round's starting design (every hyperparameter's default).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras_tuner as kt
from keras_tuner.src.engine import trial as trial_module

from pipeline.config import PipelineConfig
from pipeline.metrics import goal_met
from pipeline.search.space import DesignHyperModel
from pipeline.training import GOAL_LOG_KEY, training_callbacks

TUNERS = {
    "hyperband": (kt.oracles.HyperbandOracle, kt.Hyperband),
    "random": (kt.oracles.RandomSearchOracle, kt.RandomSearch),
    "bayesian": (kt.oracles.BayesianOptimizationOracle, kt.BayesianOptimization),
    "grid": (kt.oracles.GridSearchOracle, kt.GridSearch),
}


@dataclass
class Budget:
    """When a round must stop: goal met, wall clock spent, or its trials used."""

    metric: str
    threshold: float
    max_trials: int
    deadline: float
    stop_on_goal: bool
    margin: float = 0.0
    reason: str | None = None

    def stop_reason(self, oracle) -> str | None:
        finished = [t for t in oracle.trials.values() if t.status in ("COMPLETED", "FAILED", "INVALID")]
        if self.stop_on_goal:
            best = oracle.get_best_trials(1)
            if best and best[0].score is not None and goal_met(best[0].score, self.threshold, self.metric,
                                                                self.margin):
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


def first_non_finite(values: list[float]) -> int | None:
    """1-based epoch of the first NaN/inf value, or None when all are finite."""
    return next((i + 1 for i, v in enumerate(values) if not math.isfinite(v)), None)


@dataclass
class TrialRecord:
    trial_id: str
    status: str
    score: float | None
    seconds: float | None  # None: finished by an earlier run of a resumed search
    hyperparameters: dict
    message: str = ""
    curves: dict = field(default_factory=dict)
    resumed: bool = False


def _record(trial, seconds: float | None, resumed: bool = False) -> TrialRecord:
    message = (trial.message or "").strip().splitlines()[-1] if trial.message else ""
    return TrialRecord(
        trial_id=trial.trial_id, status=str(trial.status), score=trial.score,
        message=message or ("finished by an earlier, interrupted run" if resumed else ""),
        seconds=seconds, resumed=resumed, hyperparameters=dict(trial.hyperparameters.values),
        curves={name: [float(sum(o.value) / len(o.value)) for o in trial.metrics.get_history(name)]
                for name in trial.metrics.metrics},
    )


def _with_earlier_trials(oracle, records: list[TrialRecord]) -> list[TrialRecord]:
    """This run's trials plus those a reloaded project had finished before, in start order."""
    ran = {r.trial_id: r for r in records}
    finished = ("COMPLETED", "FAILED", "INVALID")
    earlier = {tid: _record(t, None, resumed=True) for tid, t in oracle.trials.items()
               if tid not in ran and t.status in finished}
    merged = {**earlier, **ran}
    order = [tid for tid in oracle.start_order if tid in merged]
    return [merged[tid] for tid in order] + [r for tid, r in merged.items() if tid not in order]


@dataclass
class RoundResult:
    stop_reason: str
    trials: list[TrialRecord]
    best: list  # KerasTuner HyperParameters of the best completed trials, best first


def run_tuner(cfg: PipelineConfig, hypermodel: DesignHyperModel, train: tuple, validation: tuple,
              directory: Path, max_trials: int, deadline: float, seed: int, top_k: int = 1,
              on_trial_end=None, margin: float = 0.0) -> RoundResult:
    """Search with KerasTuner; `on_trial_end(TrialRecord)` is called after every trial."""
    search = cfg.search
    oracle_base, tuner_base = TUNERS[search.tuner]
    objective = kt.Objective(GOAL_LOG_KEY, direction=cfg.goal.direction)
    budget = Budget(cfg.goal.metric, cfg.goal.threshold, max_trials, deadline, search.stop_on_goal, margin)
    oracle_kwargs = dict(objective=objective, seed=seed, max_retries_per_trial=0,
                         max_consecutive_failed_trials=max_trials + 1)
    if search.tuner == "hyperband":
        oracle_kwargs.update(max_epochs=hypermodel.epochs, factor=search.hyperband_factor)
    else:
        oracle_kwargs["max_trials"] = max_trials
    oracle = type(f"Goal{oracle_base.__name__}", (_GoalAwareOracle, oracle_base), {})(**oracle_kwargs)
    oracle.budget = budget
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
            record = _record(trial, round(time.monotonic() - started.get(trial.trial_id, time.monotonic()), 2))
            records.append(record)
            if on_trial_end:
                on_trial_end(record)

    # overwrite=False: an existing project (same search, interrupted) is reloaded; its finished
    # trials count and are not rerun, and the trial that was running is run again.
    tuner = _Tuner(oracle=oracle, hypermodel=hypermodel, directory=str(directory), project_name="search",
                   overwrite=False)
    callbacks = training_callbacks(cfg.goal, validation, cfg.train.early_stopping_patience, deadline, train=train,
                                   monitor=cfg.train.early_stopping_monitor)
    tuner.search(*train, validation_data=validation, epochs=hypermodel.epochs, callbacks=callbacks, verbose=0)
    records = _with_earlier_trials(oracle, records)
    best = [t for t in oracle.get_best_trials(top_k) if t.status == "COMPLETED" and t.score is not None]
    # KerasTuner's own max_trials check may end the loop before our budget is asked.
    reason = budget.reason or budget.stop_reason(oracle) or "search space exhausted"
    return RoundResult(stop_reason=reason, trials=records, best=[t.hyperparameters for t in best])
