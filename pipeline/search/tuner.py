"""One round of search: KerasTuner, stopped by the goal, the clock or the trial budget.

KerasTuner alone stops when a trial count runs out. Here each oracle also ends a round cleanly
when the goal is met on validation or the wall-clock deadline passes, and starts the round at
its starting design (every hyperparameter's default). Only KerasTuner's documented hooks are
used: an oracle's `populate_space` and `end_trial`, a tuner's `run_trial`, `pre_create_trial`,
`on_trial_begin` and `on_trial_end`, with the classes' own constructors, so its distributed mode
(a chief holding the oracle, workers running trials; see pipeline/search/workers.py) works too.
Trial records are made where the oracle is (the chief), each with the worker that ran it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import keras_tuner as kt

from pipeline.config import PipelineConfig
from pipeline.objective import Objective
from pipeline.search.records import TrialRecord
from pipeline.search.space import DesignHyperModel
from pipeline.training import GOAL_LOG_KEY, EpochLog, training_callbacks

FINISHED = ("COMPLETED", "FAILED", "INVALID")


@dataclass
class Budget:
    """When a round must stop: goal met, wall clock spent, or its trials used."""

    objective: Objective
    max_trials: int
    deadline: float
    stop_on_goal: bool
    margin: float = 0.0
    reason: str | None = None

    def stop_reason(self, oracle) -> str | None:
        if self.stop_on_goal:
            best = oracle.get_best_trials(1)
            if best and best[0].score is not None and self.objective.met(best[0].score, self.margin):
                return "goal met on validation"
        if time.monotonic() >= self.deadline:
            return "time budget spent"
        if len(oracle.trials) >= self.max_trials:  # started ones: parallel workers must not overshoot
            return "trial budget spent"
        return None


class BudgetedOracle:
    """Mixed in before a KerasTuner oracle: stops on the Budget, and (unless told not to) gives
    the round's first trial the space's default values: the round's starting design.

    With several workers, a worker that asks once the budget is spent waits (IDLE) until the
    others' trials end, so all are told to stop together and the round ends at once. Every
    ended trial is passed to `on_trial_end(TrialRecord)` with the worker (tuner id) that ran it."""

    def __init__(self, *, budget: Budget, start_at_defaults: bool = True, on_trial_end=None, **kwargs):
        super().__init__(**kwargs)
        self.budget, self.start_at_defaults = budget, start_at_defaults
        self.on_trial_end = on_trial_end
        self.records: list[TrialRecord] = []
        self._began: dict[str, float] = {}

    def populate_space(self, trial_id):
        reason = self.budget.stop_reason(self)
        if reason:
            self.budget.reason = reason
            return {"status": "IDLE" if self.ongoing_trials else "STOPPED", "values": None}
        first = not self.trials
        self._began[trial_id] = time.monotonic()
        response = super().populate_space(trial_id)
        if first and self.start_at_defaults and response.get("status") == "RUNNING":
            tuner_values = {k: v for k, v in response["values"].items() if k.startswith("tuner/")}
            response = {**response, "values": {**self.default_values(), **tuner_values}}
        return response

    @kt.synchronized
    def end_trial(self, trial):
        worker = next((tuner_id for tuner_id, ongoing in self.ongoing_trials.items()
                       if ongoing.trial_id == trial.trial_id), "")
        super().end_trial(trial)
        self.save()  # KerasTuner saved before it took the trial off the ongoing ones: a resume must not rerun it
        began = self._began.pop(trial.trial_id, None)
        record = trial_record(self.trials[trial.trial_id], None if began is None else round(time.monotonic() - began, 2),
                              worker=worker)
        self.records.append(record)
        if self.on_trial_end:
            self.on_trial_end(record)

    def all_records(self) -> list[TrialRecord]:
        """This run's trials plus those a reloaded project had finished before, in start order."""
        ran = {r.trial_id: r for r in self.records}
        earlier = {tid: trial_record(t, None, resumed=True) for tid, t in self.trials.items()
                   if tid not in ran and t.status in FINISHED}
        merged = {**earlier, **ran}
        order = [tid for tid in self.start_order if tid in merged]
        return [merged[tid] for tid in order] + [r for tid, r in merged.items() if tid not in order]

    def default_values(self) -> dict:
        """Every active hyperparameter at its default."""
        values = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            values.merge([hp])
            if values.is_active(hp):
                values.values[hp.name] = hp.default
        return dict(values.values)


class HyperbandOracle(BudgetedOracle, kt.oracles.HyperbandOracle):
    pass


class RandomOracle(BudgetedOracle, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(BudgetedOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class GridOracle(BudgetedOracle, kt.oracles.GridSearchOracle):
    """A grid walks its own order from the first combination: no default seeding."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "start_at_defaults": False})


ORACLES = {"hyperband": HyperbandOracle, "random": RandomOracle, "bayesian": BayesianOracle, "grid": GridOracle}


def first_non_finite(values: list[float]) -> int | None:
    """1-based epoch of the first NaN/inf value, or None when all are finite."""
    return next((i + 1 for i, v in enumerate(values) if not math.isfinite(v)), None)


def trial_record(trial, seconds: float | None, resumed: bool = False, worker: str = "") -> TrialRecord:
    message = (trial.message or "").strip().splitlines()[-1] if trial.message else ""
    return TrialRecord(
        trial_id=trial.trial_id, status=str(trial.status), score=trial.score,
        message=message or ("finished by an earlier, interrupted run" if resumed else ""),
        seconds=seconds, resumed=resumed, worker=worker, hyperparameters=dict(trial.hyperparameters.values),
        curves={name: [float(sum(o.value) / len(o.value)) for o in trial.metrics.get_history(name)]
                for name in trial.metrics.metrics},
    )


class DesignTuner(kt.Tuner):
    """KerasTuner's Tuner with what the redesign adds: diverged runs FAILED, Hyperband's per-trial
    epoch budget (each trial trains from scratch), and hooks where the trial trains:
    `on_trial_begin(trial_id)` may return an epoch logger, `on_trial_end(TrialRecord)` hears the
    scored trial."""

    # how long a worker waits before asking again when the oracle is IDLE (others still training)
    IDLE_WAIT_S = 0.2

    def __init__(self, oracle, hypermodel: DesignHyperModel, on_trial_begin=None, on_trial_end=None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self._started: dict[str, float] = {}
        self._on_trial_begin, self._on_trial_end = on_trial_begin, on_trial_end
        self._asked = False

    def pre_create_trial(self):
        if self._asked:  # asking again without a trial run in between: the oracle was IDLE
            time.sleep(self.IDLE_WAIT_S)
        self._asked = True

    def run_trial(self, trial, *args, **kwargs):
        # every trial starts from the same seed: a design gets the same initial weights whichever
        # worker runs it, and whatever ran before it in that process
        keras.utils.set_random_seed(self.hypermodel.cfg.train.seed)
        if "tuner/epochs" in trial.hyperparameters.values:
            kwargs["epochs"] = trial.hyperparameters.values["tuner/epochs"]
        epoch_logger = self._on_trial_begin(trial.trial_id) if self._on_trial_begin else None
        if epoch_logger is not None:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), EpochLog(epoch_logger)]
        histories = super().run_trial(trial, *args, **kwargs)
        for history in histories if isinstance(histories, list) else [histories]:
            diverged_at = first_non_finite(history.history.get("loss", []))
            if diverged_at is not None:
                # Recorded as FAILED (not INVALID), and the search goes on with the next trial.
                raise kt.errors.FailedTrialError(f"training diverged: loss not finite at epoch {diverged_at}")
        return histories

    def on_trial_begin(self, trial):
        self._asked = False
        self._started[trial.trial_id] = time.monotonic()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        started = self._started.get(trial.trial_id, time.monotonic())
        if self._on_trial_end:
            # the oracle's copy, scored (on a worker, fetched from the chief)
            self._on_trial_end(trial_record(self.oracle.get_trial(trial.trial_id),
                                            round(time.monotonic() - started, 2), worker=self.tuner_id))


@dataclass
class RoundResult:
    stop_reason: str
    trials: list[TrialRecord]
    best: list  # (KerasTuner HyperParameters, subset score) of the best completed trials, best first


def run_tuner(cfg: PipelineConfig, hypermodel: DesignHyperModel, train, validation, directory: Path,
              max_trials: int, deadline: float, seed: int, top_k: int = 1, on_trial_end=None,
              margin: float = 0.0, start_at_defaults: bool = True, on_trial_begin=None,
              on_trial_trained=None, serve=None) -> RoundResult:
    """Search with KerasTuner on `train` rows, scored on `validation` rows.

    `on_trial_end(TrialRecord)` is called as the oracle hears a trial ended; `on_trial_begin(trial_id)`
    and `on_trial_trained(TrialRecord)` are called where the trial trains (the first may return an
    epoch logger `(epoch, logs) -> None`). In KerasTuner's distributed mode (its environment
    variables set, see pipeline/search/workers.py) this process is the chief: it holds the oracle
    and workers run the trials. `start_at_defaults=False` lets the oracle draw its first trial as
    it would alone (for comparisons with plain KerasTuner). `serve(search)`, when given, runs the
    search call (a WorkerPool's, which fails if its workers all die).
    """
    oracle = round_oracle(cfg, hypermodel, max_trials, deadline, seed, margin, start_at_defaults, on_trial_end)
    # overwrite=False: an existing project (same search, interrupted) is reloaded; its finished
    # trials count and are not rerun, and the trial that was running is run again.
    tuner = DesignTuner(oracle, hypermodel, on_trial_begin=on_trial_begin, on_trial_end=on_trial_trained,
                        directory=str(directory), project_name="search", overwrite=False)

    def search():
        search_trials(tuner, cfg, hypermodel, train, validation, deadline)

    if serve is None:
        search()
    else:
        serve(search)
    best = [t for t in oracle.get_best_trials(top_k) if t.status == "COMPLETED" and t.score is not None]
    budget = oracle.budget
    reason = budget.reason or budget.stop_reason(oracle) or "search space exhausted"
    return RoundResult(stop_reason=reason, trials=oracle.all_records(),
                       best=[(t.hyperparameters, t.score) for t in best])


def round_oracle(cfg: PipelineConfig, hypermodel: DesignHyperModel, max_trials: int, deadline: float, seed: int,
                 margin: float = 0.0, start_at_defaults: bool = True, on_trial_end=None) -> BudgetedOracle:
    """The round's oracle; its Budget (not KerasTuner's own max_trials) ends the round."""
    search, objective = cfg.search, cfg.objective
    budget = Budget(objective, max_trials, deadline, search.stop_on_goal, margin)
    oracle_kwargs = dict(objective=objective.keras_tuner(GOAL_LOG_KEY), seed=seed, max_retries_per_trial=0,
                         max_consecutive_failed_trials=max_trials + 1, budget=budget,
                         start_at_defaults=start_at_defaults, on_trial_end=on_trial_end)
    if search.tuner == "hyperband":
        oracle_kwargs.update(max_epochs=hypermodel.epochs, factor=search.hyperband_factor)
    else:
        oracle_kwargs["max_trials"] = None
    return ORACLES[search.tuner](**oracle_kwargs)


def search_trials(tuner: DesignTuner, cfg: PipelineConfig, hypermodel: DesignHyperModel, train, validation,
                  deadline: float) -> None:
    """Run the tuner's trials on `train` rows (a chief: serve its oracle until the workers are done)."""
    callbacks = training_callbacks(cfg.goal, validation, cfg.train.early_stopping_patience, deadline,
                                   monitor=cfg.train.early_stopping_monitor, preprocessing=hypermodel.preprocessing)
    tuner.search(train.x, train.y, validation_data=(validation.x, validation.y), epochs=hypermodel.epochs,
                 callbacks=callbacks, verbose=0)
