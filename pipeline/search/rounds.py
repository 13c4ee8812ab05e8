"""The redesign loop: search cheaply on a subset, confirm the best on all data, diagnose, repeat.

    round r:  search    KerasTuner on `subset_fraction` of the training split (cheap trials)
              confirm   the round's `top_k` designs trained on the whole training split
              average   the ensemble of the best designs so far, scored like any design
              stop      if one meets the goal on validation (search.stop_on_goal)
              reshape   diagnose the best run's learning curves, change the next round's space
The wall-clock budget and the trial budget are shared by all rounds; whichever ends first
ends the search cleanly with the best design so far.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from sklearn.model_selection import train_test_split

from pipeline import inputs
from pipeline.config import PipelineConfig
from pipeline.designs import Design, DesignSpace
from pipeline.files import read_json, write_json
from pipeline.models.builder import ensemble_of, load_model
from pipeline.prepared import Rows, Splits
from pipeline.schema import Schema
from pipeline.search.diagnosis import RoundPlan, adjust, round_diagnoses
from pipeline.search.records import FullRun, RoundRecord, TrialRecord
from pipeline.search.space import DesignHyperModel
from pipeline.search.tuner import RoundResult, run_tuner
from pipeline.training import fit_design, score_and_loss


@dataclass
class Candidate:
    """A design trained on the whole training split, scored on validation."""

    round: int
    design: Design
    validation: float
    curves: dict
    model: keras.Model = field(repr=False)
    loss: float = math.inf  # validation loss: breaks ties in the goal metric

    @property
    def hyperparameters(self) -> dict:
        return self.design.values()


@dataclass
class SearchOutcome:
    stop_reason: str
    trials: list[dict]  # one row per subset trial, with its round
    candidates: list[Candidate]
    history: list[RoundRecord]
    seconds: float


def values_hash(values: dict) -> str:
    """A short name for a design's hyperparameter values (stable across processes)."""
    shown = {k: v for k, v in sorted(values.items()) if not k.startswith("tuner/")}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_candidate(candidate: Candidate, directory: Path) -> None:
    """Persist a full-data run (model last: its presence marks the run complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "candidate.json", {"design": candidate.design.to_dict(), "validation": candidate.validation,
                                              "loss": candidate.loss, "curves": candidate.curves})
    candidate.model.save(directory / "model.keras")


def load_candidate(directory: Path, round_no: int) -> Candidate | None:
    """A full-data run an earlier (interrupted) run of the same search finished, if any."""
    if not (directory / "model.keras").is_file() or not (directory / "candidate.json").is_file():
        return None
    saved = read_json(directory / "candidate.json")
    return Candidate(round_no, Design.from_dict(saved["design"]), saved["validation"], saved["curves"],
                     load_model(directory / "model.keras"), saved.get("loss", math.inf))


def subsample(rows: Rows, fraction: float, seed: int, stratify: bool) -> Rows:
    """A seeded (stratified when possible) fraction of some rows."""
    if fraction >= 1.0:
        return rows
    labels = rows.y if stratify else None
    try:
        idx, _ = train_test_split(np.arange(len(rows)), train_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # too few rows per class for a stratified subset
        idx, _ = train_test_split(np.arange(len(rows)), train_size=fraction, random_state=seed)
    idx = np.sort(idx)
    return Rows(inputs.take(rows.x, idx), rows.y[idx])


class RedesignLoop:
    """The rounds of one search. Hooks: `on_trial(round, fraction, TrialRecord)`, `on_candidate(Candidate)`."""

    def __init__(self, cfg: PipelineConfig, schema: Schema, splits: Splits, initial: Design, directory: Path,
                 on_trial=None, on_candidate=None, log=print):
        self.cfg, self.schema, self.splits, self.initial, self.directory = cfg, schema, splits, initial, directory
        self.on_trial, self.on_candidate, self.log = on_trial, on_candidate, log
        self.search, self.objective = cfg.search, cfg.objective
        self.margin = self.objective.stop_margin(self.search.goal_margin, len(splits.validation))
        self.subset = subsample(splits.train, self.search.subset_fraction, self.search.seed, schema.task.single_label)
        self.fraction = len(self.subset) / len(splits.train)
        self.plan = RoundPlan(DesignSpace.from_config(cfg), self.search.max_epochs, cfg.train.epochs)
        self.defaults = initial.values()
        self.candidates: list[Candidate] = []
        self.trials: list[dict] = []
        self.history: list[RoundRecord] = []

    def best(self, candidates: list[Candidate] | None = None) -> Candidate | None:
        """Best on the validation goal metric; among equals, the lowest validation loss; then the earliest."""
        return self.objective.best(self.candidates if candidates is None else candidates,
                                   value=lambda c: c.validation if np.isfinite(c.validation) else math.nan,
                                   loss=lambda c: c.loss)

    def run(self, prior: tuple[Candidate, ...] = ()) -> SearchOutcome:
        """Run the rounds. `prior`: designs already trained on all the data (the trained initial
        design, as round 0); they compete with the searched ones and may join an ensemble."""
        started = time.monotonic()
        self.deadline = started + self.search.time_budget_s
        self.candidates = list(prior)
        trials_left = self.search.max_trials
        stop_reason = "all rounds done"
        for round_no in range(1, self.search.rounds + 1):
            if trials_left <= 0:
                stop_reason = "trial budget spent"
                break
            if time.monotonic() >= self.deadline:
                stop_reason = "time budget spent"
                break
            hypermodel = DesignHyperModel(self.cfg, self.schema, self.initial.preprocessing, self.plan.space,
                                          self.defaults, self.plan.trial_epochs, len(self.subset), self.plan.clipnorm)
            result = self.search_subset(round_no, hypermodel, min(self.search.trials_per_round, trials_left))
            trials_left -= len(result.trials)
            record = RoundRecord(
                round=round_no, data_fraction=round(self.fraction, 4), trials=len(result.trials),
                failed=sum(t.status != "COMPLETED" for t in result.trials), round_stop=result.stop_reason,
                space=self.plan.space.to_dict(), trial_epochs=self.plan.trial_epochs,
                full_epochs=self.plan.full_epochs)
            self.history.append(record)
            confirmed = self.confirm(round_no, result, hypermodel, record)
            if self.search.ensemble:
                self.average(round_no, record)
            best = self.best()
            if self.search.stop_on_goal and best is not None and self.objective.met(best.validation, self.margin):
                stop_reason = "goal met on validation"
                break
            self.reshape(round_no, result, confirmed, record)
            if result.stop_reason == "time budget spent":
                stop_reason = "time budget spent"
                break
        if stop_reason == "all rounds done" and trials_left <= 0:
            stop_reason = "trial budget spent"
        return SearchOutcome(stop_reason, self.trials, self.candidates, self.history,
                             round(time.monotonic() - started, 2))

    def search_subset(self, round_no: int, hypermodel: DesignHyperModel, max_trials: int) -> RoundResult:
        """KerasTuner on the subset, from the round's starting design."""
        def record_trial(record: TrialRecord):
            shown = ", ".join(f"{k}={v}" for k, v in record.values.items())
            score = "-" if record.score is None else f"{record.score:.4f}"
            self.log(f"redesign: round {round_no} trial {record.trial_id} [{record.status}] {self.cfg.goal.metric}="
                     f"{score} on {self.fraction:.0%} of train in {record.seconds} s: {shown}"
                     + (f" ({record.message})" if record.message else ""))
            if self.on_trial:
                self.on_trial(round_no, self.fraction, record)

        result = run_tuner(self.cfg, hypermodel, self.subset, self.splits.validation,
                           self.directory / f"round_{round_no}", max_trials=max_trials, deadline=self.deadline,
                           seed=self.search.seed + round_no - 1, top_k=self.search.top_k, on_trial_end=record_trial,
                           margin=self.margin)
        self.trials += [r.row(round_no, self.fraction) for r in result.trials]
        resumed = sum(r.resumed for r in result.trials)
        if resumed:
            self.log(f"redesign: round {round_no} resumed: {resumed} trial(s) finished by an earlier run were kept")
        return result

    def confirm(self, round_no: int, result: RoundResult, hypermodel: DesignHyperModel,
                record: RoundRecord) -> list[Candidate]:
        """The round's best designs trained on the whole training split (or reloaded when a resumed
        search had finished them)."""
        confirmed = []
        for rank, hp in enumerate(result.best):
            saved = self.directory / f"round_{round_no}" / f"full_{values_hash(hp.values)}"
            candidate = load_candidate(saved, round_no)
            if candidate is None:
                if time.monotonic() >= self.deadline:
                    break
                candidate = self.train_on_all(hypermodel.design_from(hp.copy()), round_no)
                save_candidate(candidate, saved)
            else:
                self.log(f"redesign: round {round_no} full-data run #{rank + 1} reloaded from {saved}")
            confirmed.append(candidate)
            self.candidates.append(candidate)
            record.full_runs.append(FullRun(candidate.hyperparameters, candidate.validation, candidate.loss,
                                            len(candidate.curves.get("loss", []))))
            self.log(f"redesign: round {round_no} full-data run of its #{rank + 1} design: "
                     f"validation {self.cfg.goal.metric} {candidate.validation:.4f}")
            if self.on_candidate:
                self.on_candidate(candidate)
        round_best = self.best(confirmed)
        record.best_validation = round_best.validation if round_best else None
        return confirmed

    def train_on_all(self, design: Design, round_no: int) -> Candidate:
        """Train one searched design on the whole training split and score it on validation."""
        model, curves = fit_design(design, self.schema, self.splits, self.cfg.train, self.cfg.goal,
                                   epochs=self.plan.full_epochs, deadline=self.deadline, verbose=0)
        value, loss = score_and_loss(model, self.cfg.goal, self.splits.validation)
        return Candidate(round_no, design, value, curves, model, loss)

    def average(self, round_no: int, record: RoundRecord) -> None:
        """The average of the `ensemble_size` best single designs so far, scored on validation."""
        singles = [c for c in self.candidates if not c.design.is_ensemble and np.isfinite(c.validation)]
        members = self.objective.ranked(singles, value=lambda c: c.validation,
                                        loss=lambda c: c.loss)[:self.search.ensemble_size]
        if len(members) < 2:
            return
        model = ensemble_of([m.model for m in members])
        value, loss = score_and_loss(model, self.cfg.goal, self.splits.validation)
        # An average has no training run of its own: its curves are those of its best member.
        ensemble = Candidate(round_no, Design.ensemble([m.design for m in members]), value, members[0].curves,
                             model, loss)
        self.candidates.append(ensemble)
        record.ensemble_validation, record.ensemble_validation_loss = value, loss
        self.log(f"redesign: round {round_no} ensemble of the {len(members)} best so far: "
                 f"validation {self.cfg.goal.metric} {value:.4f}")

    def reshape(self, round_no: int, result: RoundResult, confirmed: list[Candidate], record: RoundRecord) -> None:
        """Diagnose the round's best full-data run and change the next round's space."""
        round_best = self.best(confirmed)
        record.diagnoses = round_diagnoses(round_best.curves if round_best else None,
                                           [t.status for t in result.trials], self.cfg.goal, self.search.diagnosis)
        self.plan, record.changes = adjust(self.plan, record.diagnoses,
                                           round_best.hyperparameters if round_best else self.defaults)
        for d in record.diagnoses:
            self.log(f"redesign: round {round_no} diagnosis: {d.kind} ({d.evidence})")
        for change in record.changes:
            self.log(f"redesign: round {round_no + 1} change: {change}")
        best_single = self.best([c for c in self.candidates if not c.design.is_ensemble])
        if best_single is not None:
            self.defaults = best_single.hyperparameters
