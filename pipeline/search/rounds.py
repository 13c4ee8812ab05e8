"""The redesign loop: search cheaply on a subset, confirm the best on all data, diagnose, repeat.

    round r:  KerasTuner on `subset_fraction` of the training split (cheap trials)
              -> the round's `top_k` designs trained on the whole training split
              -> stop if one meets the goal on validation (search.stop_on_goal)
              -> diagnose the best run's learning curves, reshape the next round's space
The wall-clock budget and the trial budget are shared by all rounds; whichever ends first
ends the search cleanly with the best design so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split

from pipeline import metrics
from pipeline.config import PipelineConfig
from pipeline.data import Schema
from pipeline.search.diagnosis import RoundPlan, adjust, round_diagnoses
from pipeline.search.space import DesignHyperModel, initial_defaults, space_containing
from pipeline.search.tuner import TrialRecord, run_tuner
from pipeline.training import fit_design


@dataclass
class Candidate:
    """A design trained on the whole training split."""

    round: int
    design: dict
    hyperparameters: dict
    validation: float
    curves: dict
    model: keras.Model = field(repr=False)


@dataclass
class SearchOutcome:
    stop_reason: str
    trials: list[dict]  # one row per subset trial, with its round
    candidates: list[Candidate]
    history: list[dict]  # one entry per round: what was searched, found, diagnosed and changed
    seconds: float

    def best(self, direction: str) -> Candidate | None:
        return best_of(self.candidates, direction)


def best_of(candidates: list[Candidate], direction: str) -> Candidate | None:
    finite = [c for c in candidates if np.isfinite(c.validation)]
    if not finite:
        return None
    return (min if direction == "min" else max)(finite, key=lambda c: c.validation)


def subsample(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, stratify: bool):
    """A seeded (stratified when possible) fraction of the training split."""
    if fraction >= 1.0:
        return x, y
    labels = y if stratify else None
    try:
        idx, _ = train_test_split(np.arange(len(y)), train_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # too few rows per class for a stratified subset
        idx, _ = train_test_split(np.arange(len(y)), train_size=fraction, random_state=seed)
    idx = np.sort(idx)
    return x[idx], y[idx]


def run_rounds(cfg: PipelineConfig, schema: Schema, splits: dict, initial: dict, directory: Path,
               on_trial=None, on_candidate=None, log=print) -> SearchOutcome:
    """Run the redesign loop. Hooks: `on_trial(round, fraction, TrialRecord)`, `on_candidate(Candidate)`."""
    search, goal = cfg.search, cfg.goal
    started = time.monotonic()
    deadline = started + search.time_budget_s
    families = cfg.search_families
    defaults = initial_defaults(cfg, initial)
    plan = RoundPlan(space_containing(search.space, defaults), search.max_epochs, cfg.train.epochs)
    stratify = schema.task in ("binary", "multiclass")
    subset = subsample(*splits["train"], search.subset_fraction, search.seed, stratify)
    fraction = len(subset[1]) / len(splits["train"][1])
    trials_left = search.max_trials
    trials: list[dict] = []
    candidates: list[Candidate] = []
    history: list[dict] = []
    stop_reason = "all rounds done"

    for round_no in range(1, search.rounds + 1):
        if trials_left <= 0:
            stop_reason = "trial budget spent"
            break
        if time.monotonic() >= deadline:
            stop_reason = "time budget spent"
            break
        hypermodel = DesignHyperModel(cfg, schema, initial["preprocessing"], plan.space, defaults, families,
                                      plan.trial_epochs, len(subset[1]), plan.clipnorm)

        def record_trial(record: TrialRecord, round_no=round_no):
            trials.append({"round": round_no, "data_fraction": round(fraction, 4), "trial": record.trial_id,
                           "status": record.status, "score": record.score, "seconds": record.seconds,
                           "message": record.message, **record.hyperparameters})
            shown = ", ".join(f"{k}={v}" for k, v in record.hyperparameters.items() if not k.startswith("tuner/"))
            score = "-" if record.score is None else f"{record.score:.4f}"
            log(f"redesign: round {round_no} trial {record.trial_id} [{record.status}] {goal.metric}={score} "
                f"on {fraction:.0%} of train in {record.seconds} s: {shown}"
                + (f" ({record.message})" if record.message else ""))
            if on_trial:
                on_trial(round_no, fraction, record)

        result = run_tuner(cfg, hypermodel, subset, splits["validation"], directory / f"round_{round_no}",
                           max_trials=min(search.trials_per_round, trials_left), deadline=deadline,
                           seed=search.seed + round_no - 1, top_k=search.top_k, on_trial_end=record_trial)
        trials_left -= len(result.trials)
        entry = {"round": round_no, "data_fraction": round(fraction, 4), "trials": len(result.trials),
                 "failed": sum(t.status != "COMPLETED" for t in result.trials),
                 "round_stop": result.stop_reason, "space": plan.space.model_dump(mode="json"),
                 "trial_epochs": plan.trial_epochs, "full_epochs": plan.full_epochs, "full_runs": []}

        round_candidates = []
        for hp in result.best:
            if time.monotonic() >= deadline:
                break
            design = hypermodel.design_from(hp.copy())
            model, curves = fit_design(design, schema, splits, goal, epochs=plan.full_epochs,
                                       patience=cfg.train.early_stopping_patience, seed=cfg.train.seed,
                                       verbose=0, deadline=deadline)
            value = metrics.compute(goal.task, goal.metric, splits["validation"][1],
                                    model.predict(splits["validation"][0], batch_size=1024, verbose=0))
            candidate = Candidate(round_no, design, dict(hp.values), value, curves, model)
            round_candidates.append(candidate)
            candidates.append(candidate)
            entry["full_runs"].append({"hyperparameters": candidate.hyperparameters, "validation": value,
                                       "epochs": len(curves.get("loss", []))})
            log(f"redesign: round {round_no} full-data training of its #{len(round_candidates)} design: "
                f"validation {goal.metric} {value:.4f}")
            if on_candidate:
                on_candidate(candidate)
            if search.stop_on_goal and metrics.goal_met(value, goal.threshold, goal.metric, search.goal_margin):
                break

        round_best = best_of(round_candidates, goal.direction)
        entry["best_validation"] = round_best.validation if round_best else None
        diagnoses = round_diagnoses(round_best.curves if round_best else None,
                                    [t.status for t in result.trials], goal, search.diagnosis)
        entry["diagnoses"] = [d.to_dict() for d in diagnoses]
        met = round_best is not None and metrics.goal_met(round_best.validation, goal.threshold, goal.metric,
                                                          search.goal_margin)
        if search.stop_on_goal and met:
            entry["changes"] = []
            history.append(entry)
            stop_reason = "goal met on validation"
            break
        plan, changes = adjust(plan, diagnoses, round_best.hyperparameters if round_best else defaults)
        entry["changes"] = changes
        history.append(entry)
        for d in diagnoses:
            log(f"redesign: round {round_no} diagnosis: {d.kind} ({d.evidence})")
        for change in changes:
            log(f"redesign: round {round_no + 1} change: {change}")
        best_so_far = best_of(candidates, goal.direction)
        if best_so_far is not None:
            defaults = best_so_far.hyperparameters
        if result.stop_reason == "time budget spent":
            stop_reason = "time budget spent"
            break
    if stop_reason == "all rounds done" and trials_left <= 0:
        stop_reason = "trial budget spent"
    return SearchOutcome(stop_reason, trials, candidates, history, round(time.monotonic() - started, 2))


def ensemble_of(models: list[keras.Model], schema: Schema) -> keras.Model:
    """One exportable model that averages the members' outputs."""
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    outputs = [keras.Model(m.inputs, m.outputs, name=f"member_{i}")(inputs) for i, m in enumerate(models)]
    return keras.Model(inputs, keras.layers.Average(name="average")(outputs), name="ensemble")
