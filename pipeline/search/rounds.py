"""The redesign loop: search cheaply on a subset, confirm the best on all data, diagnose, repeat.

    round r:  KerasTuner on `subset_fraction` of the training split (cheap trials)
              -> the round's `top_k` designs trained on the whole training split
              -> stop if one meets the goal on validation (search.stop_on_goal)
              -> diagnose the best run's learning curves, reshape the next round's space
The wall-clock budget and the trial budget are shared by all rounds; whichever ends first
ends the search cleanly with the best design so far.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split

from pipeline import inputs, metrics
from pipeline.config import PipelineConfig
from pipeline.data import Schema
from pipeline.designs import DesignSpace, values_of
from pipeline.models import load_model
from pipeline.paths import read_json, write_json
from pipeline.search.diagnosis import RoundPlan, adjust, round_diagnoses
from pipeline.search.space import DesignHyperModel
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
    loss: float = float("inf")  # validation loss: breaks ties in the goal metric


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
    """Best on the validation goal metric; among equals, the lowest validation loss; then the earliest."""
    finite = [c for c in candidates if np.isfinite(c.validation)]
    if not finite:
        return None
    sign = -1.0 if direction == "max" else 1.0
    return min(finite, key=lambda c: (sign * c.validation, c.loss))


def score_candidate(model: keras.Model, task: str, metric: str, validation: tuple) -> tuple[float, float]:
    """(goal metric, validation loss) of a model on the validation split."""
    raw = inputs.predict(model, validation[0])
    return metrics.compute(task, metric, validation[1], raw), metrics.validation_loss(task, validation[1], raw)


def train_candidate(cfg: PipelineConfig, schema: Schema, splits: dict, design: dict, hp, epochs: int,
                    round_no: int, deadline: float) -> Candidate:
    """Train one searched design on the whole training split and score it on validation."""
    goal = cfg.goal
    model, curves = fit_design(design, schema, splits, goal, epochs=epochs, patience=cfg.train.early_stopping_patience,
                               seed=cfg.train.seed, verbose=0, deadline=deadline, monitor=cfg.train.early_stopping_monitor)
    value, loss = score_candidate(model, goal.task, goal.metric, splits["validation"])
    values = {k: v for k, v in hp.values.items() if not k.startswith("tuner/")}
    return Candidate(round_no, design, values, value, curves, model, loss)


def values_hash(values: dict) -> str:
    """A short name for a design's hyperparameter values (stable across processes)."""
    shown = {k: v for k, v in sorted(values.items()) if not k.startswith("tuner/")}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_candidate(candidate: Candidate, directory: Path) -> None:
    """Persist a full-data run (model last: its presence marks the run complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "candidate.json", {
        "design": candidate.design, "hyperparameters": candidate.hyperparameters,
        "validation": candidate.validation, "loss": candidate.loss, "curves": candidate.curves})
    candidate.model.save(directory / "model.keras")


def load_candidate(directory: Path, round_no: int) -> Candidate | None:
    """A full-data run an earlier (interrupted) run of the same search finished, if any."""
    if not (directory / "model.keras").is_file() or not (directory / "candidate.json").is_file():
        return None
    saved = read_json(directory / "candidate.json")
    model = load_model(directory / "model.keras")
    return Candidate(round_no, saved["design"], saved["hyperparameters"], saved["validation"], saved["curves"], model,
                     saved.get("loss", float("inf")))


def subsample(x, y: np.ndarray, fraction: float, seed: int, stratify: bool):
    """A seeded (stratified when possible) fraction of the training split."""
    if fraction >= 1.0:
        return x, y
    labels = y if stratify else None
    try:
        idx, _ = train_test_split(np.arange(len(y)), train_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # too few rows per class for a stratified subset
        idx, _ = train_test_split(np.arange(len(y)), train_size=fraction, random_state=seed)
    idx = np.sort(idx)
    return inputs.take(x, idx), y[idx]


def run_rounds(cfg: PipelineConfig, schema: Schema, splits: dict, initial: dict, directory: Path,
               on_trial=None, on_candidate=None, log=print, prior: tuple[Candidate, ...] = ()) -> SearchOutcome:
    """Run the redesign loop. Hooks: `on_trial(round, fraction, TrialRecord)`, `on_candidate(Candidate)`.

    `prior`: designs already trained on all the data (the trained initial design, as round 0);
    they compete with the searched ones and may join an ensemble.
    """
    search, goal = cfg.search, cfg.goal
    started = time.monotonic()
    deadline = started + search.time_budget_s
    margin = metrics.stop_margin(search.goal_margin, goal.metric, goal.threshold, len(splits["validation"][1]))
    defaults = values_of(initial)
    plan = RoundPlan(DesignSpace.from_config(cfg), search.max_epochs, cfg.train.epochs)
    stratify = schema.task in ("binary", "multiclass")
    subset = subsample(*splits["train"], search.subset_fraction, search.seed, stratify)
    fraction = len(subset[1]) / len(splits["train"][1])
    trials_left = search.max_trials
    trials: list[dict] = []
    candidates: list[Candidate] = list(prior)
    history: list[dict] = []
    stop_reason = "all rounds done"

    for round_no in range(1, search.rounds + 1):
        if trials_left <= 0:
            stop_reason = "trial budget spent"
            break
        if time.monotonic() >= deadline:
            stop_reason = "time budget spent"
            break
        hypermodel = DesignHyperModel(cfg, schema, initial["preprocessing"], plan.space, defaults,
                                      plan.trial_epochs, len(subset[1]), plan.clipnorm)

        def record_trial(record: TrialRecord, round_no=round_no):
            shown = ", ".join(f"{k}={v}" for k, v in record.hyperparameters.items() if not k.startswith("tuner/"))
            score = "-" if record.score is None else f"{record.score:.4f}"
            log(f"redesign: round {round_no} trial {record.trial_id} [{record.status}] {goal.metric}={score} "
                f"on {fraction:.0%} of train in {record.seconds} s: {shown}"
                + (f" ({record.message})" if record.message else ""))
            if on_trial:
                on_trial(round_no, fraction, record)

        result = run_tuner(cfg, hypermodel, subset, splits["validation"], directory / f"round_{round_no}",
                           max_trials=min(search.trials_per_round, trials_left), deadline=deadline,
                           seed=search.seed + round_no - 1, top_k=search.top_k, on_trial_end=record_trial,
                           margin=margin)
        trials_left -= len(result.trials)
        trials += [{"round": round_no, "data_fraction": round(fraction, 4), "trial": r.trial_id, "status": r.status,
                    "score": r.score, "seconds": r.seconds, "resumed": r.resumed, "message": r.message,
                    **r.hyperparameters} for r in result.trials]
        resumed = sum(r.resumed for r in result.trials)
        if resumed:
            log(f"redesign: round {round_no} resumed: {resumed} trial(s) finished by an earlier run were kept")
        entry = {"round": round_no, "data_fraction": round(fraction, 4), "trials": len(result.trials),
                 "failed": sum(t.status != "COMPLETED" for t in result.trials),
                 "round_stop": result.stop_reason, "space": plan.space.to_dict(),
                 "trial_epochs": plan.trial_epochs, "full_epochs": plan.full_epochs, "full_runs": []}

        round_candidates = []
        for rank, hp in enumerate(result.best):
            saved = directory / f"round_{round_no}" / f"full_{values_hash(hp.values)}"
            candidate = load_candidate(saved, round_no)
            if candidate is None:
                if time.monotonic() >= deadline:
                    break
                candidate = train_candidate(cfg, schema, splits, hypermodel.design_from(hp.copy()), hp,
                                            plan.full_epochs, round_no, deadline)
                save_candidate(candidate, saved)
            else:
                log(f"redesign: round {round_no} full-data run #{rank + 1} reloaded from {saved}")
            round_candidates.append(candidate)
            candidates.append(candidate)
            entry["full_runs"].append({"hyperparameters": candidate.hyperparameters, "validation": candidate.validation,
                                       "validation_loss": candidate.loss, "epochs": len(candidate.curves.get("loss", []))})
            log(f"redesign: round {round_no} full-data run of its #{rank + 1} design: "
                f"validation {goal.metric} {candidate.validation:.4f}")
            if on_candidate:
                on_candidate(candidate)

        round_best = best_of(round_candidates, goal.direction)
        entry["best_validation"] = round_best.validation if round_best else None
        if search.ensemble:
            ensemble = ensemble_candidate(candidates, schema, splits, goal, round_no, search.ensemble_size)
            if ensemble is not None:
                candidates.append(ensemble)
                entry["ensemble_validation"] = ensemble.validation
                entry["ensemble_validation_loss"] = ensemble.loss
                log(f"redesign: round {round_no} ensemble of the {len(ensemble.design['members'])} best so far: "
                    f"validation {goal.metric} {ensemble.validation:.4f}")
        diagnoses = round_diagnoses(round_best.curves if round_best else None,
                                    [t.status for t in result.trials], goal, search.diagnosis)
        entry["diagnoses"] = [d.to_dict() for d in diagnoses]
        best_so_far = best_of(candidates, goal.direction)
        if search.stop_on_goal and best_so_far is not None and \
                metrics.goal_met(best_so_far.validation, goal.threshold, goal.metric, margin):
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
        best_single = best_of([c for c in candidates if c.design["family"] != "ensemble"], goal.direction)
        if best_single is not None:
            defaults = best_single.hyperparameters
        if result.stop_reason == "time budget spent":
            stop_reason = "time budget spent"
            break
    if stop_reason == "all rounds done" and trials_left <= 0:
        stop_reason = "trial budget spent"
    return SearchOutcome(stop_reason, trials, candidates, history, round(time.monotonic() - started, 2))


def ensemble_candidate(candidates: list[Candidate], schema: Schema, splits: dict, goal, round_no: int,
                       size: int) -> Candidate | None:
    """The average of the `size` best single designs so far, scored on validation (None if < 2)."""
    singles = [c for c in candidates if c.design["family"] != "ensemble" and np.isfinite(c.validation)]
    sign = -1.0 if goal.direction == "max" else 1.0
    members = sorted(singles, key=lambda c: (sign * c.validation, c.loss))[:size]
    if len(members) < 2:
        return None
    model = ensemble_of([m.model for m in members])
    value, loss = score_candidate(model, goal.task, goal.metric, splits["validation"])
    design = {"family": "ensemble", "members": [m.design for m in members]}
    # An average has no training run of its own: its curves are those of its best member.
    return Candidate(round_no, design, {"family": "ensemble", "members": len(members)}, value, members[0].curves,
                     model, loss)


def ensemble_of(models: list[keras.Model]) -> keras.Model:
    """One exportable model that averages the members' outputs."""
    shared = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name), models[0].input)
    # Renamed wrappers: members may share a name (same family), which one graph cannot hold.
    outputs = [keras.Model(m.input, m.output, name=f"member_{i}")(shared) for i, m in enumerate(models)]
    return keras.Model(shared, keras.layers.Average(name="average")(outputs), name="ensemble")
