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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from pipeline.config import PipelineConfig
from pipeline.designs import Design, DesignSpace
from pipeline.files import read_json, write_json
from pipeline.models.builder import ensemble_of, load_model
from pipeline.prepared import Rows, Splits, subsample
from pipeline.schema import Schema
from pipeline.search.diagnosis import RoundPlan, adjust, round_diagnoses
from pipeline.search.records import FullRun, RoundRecord, TrialRecord
from pipeline.search.space import DesignHyperModel
from pipeline.search.tuner import RoundResult, run_tuner
from pipeline.search.watch import SearchWatch
from pipeline.search.workers import RoundSpec, WorkerPool, free_port
from pipeline.training import fit_design, score_and_loss


@dataclass
class Candidate:
    """A design trained on the whole training split, scored on validation."""

    round: int
    design: Design
    validation: float
    curves: dict
    model: keras.Model = field(repr=False)
    loss: float = math.inf  # validation ranking loss (Task.ranking_loss): breaks ties in the goal metric
    restored_epoch: int = 0  # the epoch whose weights were kept (0: not a training run, e.g. an ensemble)
    cut_short: bool = False  # stopped by the deadline: its curves cannot be diagnosed
    members: list[Candidate] = field(default_factory=list, repr=False)  # an ensemble's
    subset_score: float | None = None  # the same design's score in its subset trial (search fidelity)
    train_score: float | None = None  # goal metric on training rows, inference mode: what diagnosis reads
    phase_epochs: tuple[int, ...] = ()  # epochs per training phase up to the kept weights (see training.Fitted)
    epoch_seconds: float | None = None  # what one epoch of its training run took (None: not measured)

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
    fidelity: float | None = None  # rank correlation of subset-trial and full-data scores, all rounds


def rank_correlation(pairs: list[tuple[float, float]]) -> float | None:
    """Spearman's rho between subset-trial scores and full-data scores (None: under 3 designs or no spread)."""
    from scipy.stats import spearmanr

    finite = [(a, b) for a, b in pairs if np.isfinite(a) and np.isfinite(b)]
    if len(finite) < 3 or len({a for a, _ in finite}) < 2 or len({b for _, b in finite}) < 2:
        return None
    return float(spearmanr([a for a, _ in finite], [b for _, b in finite]).statistic)

def values_hash(values: dict) -> str:
    """A short name for a design's hyperparameter values (stable across processes)."""
    shown = {k: v for k, v in sorted(values.items()) if not k.startswith("tuner/")}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_candidate(candidate: Candidate, directory: Path) -> None:
    """Persist a full-data run (model last: its presence marks the run complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "candidate.json", {"design": candidate.design.to_dict(), "validation": candidate.validation,
                                              "ranking_loss": candidate.loss, "curves": candidate.curves,
                                              "restored_epoch": candidate.restored_epoch,
                                              "cut_short": candidate.cut_short,
                                              "train_score": candidate.train_score,
                                              "phase_epochs": list(candidate.phase_epochs),
                                              "epoch_seconds": candidate.epoch_seconds})
    candidate.model.save(directory / "model.keras")


def load_candidate(directory: Path, round_no: int) -> Candidate | None:
    """A full-data run an earlier (interrupted) run of the same search finished, if any."""
    if not (directory / "model.keras").is_file() or not (directory / "candidate.json").is_file():
        return None
    saved = read_json(directory / "candidate.json")
    return Candidate(round_no, Design.from_dict(saved["design"]), saved["validation"], saved["curves"],
                     load_model(directory / "model.keras"), saved.get("ranking_loss", math.inf),
                     saved.get("restored_epoch", 0), saved.get("cut_short", False),
                     train_score=saved.get("train_score"), phase_epochs=tuple(saved.get("phase_epochs", ())),
                     epoch_seconds=saved.get("epoch_seconds"))


TRAIN_SCORE_ROWS = 5000


def train_score(model: keras.Model, goal, rows: Rows, seed: int) -> float | None:
    """The goal metric on (at most TRAIN_SCORE_ROWS of) the training rows, predicted in inference
    mode like validation: the running train metric carries dropout and augmentation noise."""
    sample = subsample(rows, min(1.0, TRAIN_SCORE_ROWS / max(1, len(rows))), seed, goal.kind.single_label)
    value, _ = score_and_loss(model, goal, sample)
    return value if math.isfinite(value) else None


class RedesignLoop:
    """The rounds of one search; `watch` hears of each trial and full-data run as it starts and
    ends, `log` gets one progress line for each."""

    def __init__(self, cfg: PipelineConfig, schema: Schema, splits: Splits, initial: Design, directory: Path,
                 watch: SearchWatch | None = None, log=print):
        self.cfg, self.schema, self.splits, self.initial, self.directory = cfg, schema, splits, initial, directory
        self.watch, self.log = watch or SearchWatch(), log
        self.workers: WorkerPool | None = None  # set: the subset trials run on these workers (this process is the chief)
        self.begun = time.monotonic()
        self.deadline = self.begun + cfg.search.time_budget_s
        self.search, self.objective = cfg.search, cfg.objective
        self.margin = self.objective.stop_margin(self.search.goal_margin, len(splits.validation))
        self.positives = schema.task.positives(splits.validation.y)  # a binary AUC's noise depends on it
        self.subset = subsample(splits.train, self.search.subset_fraction, self.search.seed, schema.task.single_label)
        self.fraction = len(self.subset) / len(splits.train)
        self.plan = RoundPlan(DesignSpace.from_config(cfg, schema.body_kind, len(splits.train)), self.search.max_epochs,
                              cfg.train.epochs)
        self.defaults = initial.values()
        self.candidates: list[Candidate] = []
        self.trials: list[dict] = []
        self.history: list[RoundRecord] = []
        # a design no better on validation than always predicting the training prior has learned nothing
        constant = schema.task.constant_outputs(splits.train.y, len(splits.validation), schema.n_outputs)
        self.floor = schema.task.score(cfg.goal.metric, splits.validation.y, constant)

    def best(self, candidates: list[Candidate] | None = None, within_noise: bool = False) -> Candidate | None:
        """Best on the validation goal metric; among equals, the lowest ranking loss; then the earliest.
        `within_noise`: for a rate or a binary AUC, scores within a standard error of the best count as equal."""
        candidates = self.candidates if candidates is None else candidates

        def value(c):
            return c.validation if np.isfinite(c.validation) else math.nan

        if within_noise:
            return self.objective.best_within_noise(candidates, value=value, loss=lambda c: c.loss,
                                                    rows=len(self.splits.validation), positives=self.positives)
        return self.objective.best(candidates, value=value, loss=lambda c: c.loss)

    def run(self, prior: tuple[Candidate, ...] = (), reserve_s: float = 0.0,
            budget_started: float | None = None) -> SearchOutcome:
        """Run the rounds. `prior`: designs already trained on all the data (the trained initial
        design, as round 0); they compete with the searched ones and may join an ensemble.
        `reserve_s`: seconds of the budget kept for what follows the search (the refit);
        `budget_started`: when the time budget began (default: now)."""
        started = time.monotonic()
        self.begun = started if budget_started is None else budget_started
        self.deadline = self.begun + max(0.0, self.search.time_budget_s - reserve_s)
        self.candidates = list(prior)
        self.start = prior[0] if prior else None  # the design the round starts from, trained on all data
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
            round_started = time.monotonic()
            result = self.search_subset(round_no, hypermodel, min(self.search.trials_per_round, trials_left))
            trials_left -= len(result.trials)
            record = RoundRecord(
                round=round_no, data_fraction=round(self.fraction, 4), trials=len(result.trials),
                failed=sum(t.status != "COMPLETED" for t in result.trials), round_stop=result.stop_reason,
                space=self.plan.space.to_dict(), trial_epochs=self.plan.trial_epochs,
                full_epochs=self.plan.full_epochs, trials_seconds=round(time.monotonic() - round_started, 2),
                workers=1 if self.workers is None else self.workers.count)
            self.history.append(record)
            confirmed = self.confirm(round_no, result, hypermodel, record)
            record.fidelity, record.fidelity_designs = self.fidelity(result, confirmed)
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
        pairs = [(c.subset_score, c.validation) for c in self.candidates if c.subset_score is not None]
        return SearchOutcome(stop_reason, self.trials, self.candidates, self.history,
                             round(time.monotonic() - started, 2), rank_correlation(pairs))

    def fidelity(self, result: RoundResult, confirmed: list[Candidate]) -> tuple[float | None, int]:
        """How well the round's subset trials ranked designs: the rank correlation of their scores
        with the same designs' full-data validation scores (the confirmed ones, and the round's
        starting design, which the round's first trial tried, when it was trained on all data)."""
        pairs = [(c.subset_score, c.validation) for c in confirmed]
        first = result.trials[0] if result.trials else None
        if self.start is not None and first is not None and first.status == "COMPLETED" and first.score is not None:
            pairs.append((first.score, self.start.validation))
        return rank_correlation(pairs), len(pairs)

    def progress(self) -> str:
        """Where the search stands: time used and left of its budget, the best full-data design so far."""
        now = time.monotonic()
        used, left = now - self.begun, max(0.0, self.deadline - now)
        best = self.best()
        shown = (f"best so far: {best.design.family} (round {best.round}) validation {best.validation:.4f}"
                 if best is not None else "no full-data design yet")
        return f"{used:.0f} s of {self.search.time_budget_s:.0f} s used, {left:.0f} s left; {shown}"

    def search_subset(self, round_no: int, hypermodel: DesignHyperModel, max_trials: int) -> RoundResult:
        """KerasTuner on the subset, from the round's starting design."""
        finished: list[TrialRecord] = []

        def record_trial(record: TrialRecord):
            finished.append(record)
            shown = ", ".join(f"{k}={v}" for k, v in record.values.items())
            score = "-" if record.score is None else f"{record.score:.4f}"
            round_best = self.objective.best([r.score for r in finished if r.score is not None], value=float)
            worker = f" by {record.worker}" if self.workers is not None else ""
            self.log(f"redesign: trial {len(self.trials) + len(finished)}/{self.search.max_trials} (round {round_no}) "
                     f"[{record.status}] {self.cfg.goal.metric}={score} on {self.fraction:.0%} of train in "
                     f"{record.seconds} s{worker}" + (f" ({record.message})" if record.message else "")
                     + (f"; round's best trial {round_best:.4f}" if round_best is not None else "")
                     + f" | {self.progress()} | {shown}")

        seed = self.search.seed + round_no - 1
        serving = nullcontext()
        if self.workers is not None:
            serving = self.workers.round(RoundSpec(
                self.workers.spec.run, round_no, free_port(self.workers.bind_host), self.plan.space.to_dict(),
                self.defaults, self.plan.trial_epochs, len(self.subset), self.plan.clipnorm, self.fraction,
                time.time() + (self.deadline - time.monotonic()), max_trials, seed))
        with serving:
            result = run_tuner(
                self.cfg, hypermodel, self.subset, self.splits.validation, self.directory / f"round_{round_no}",
                max_trials=max_trials, deadline=self.deadline, seed=seed, top_k=self.search.top_k,
                on_trial_end=record_trial, margin=self.margin,
                on_trial_begin=lambda trial_id: self.watch.trial_started(round_no, self.fraction, trial_id),
                on_trial_trained=lambda record: self.watch.trial_ended(round_no, self.fraction, record),
                serve=None if self.workers is None else self.workers.serve)
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
        for rank, (hp, subset_score) in enumerate(result.best):
            saved = self.directory / f"round_{round_no}" / f"full_{values_hash(hp.values)}"
            candidate = load_candidate(saved, round_no)
            fresh = candidate is None
            if fresh:
                if time.monotonic() >= self.deadline:
                    break
                candidate = self.train_on_all(hypermodel.design_from(hp.copy()), round_no)
                save_candidate(candidate, saved)
            else:
                self.log(f"redesign: round {round_no} full-data run #{rank + 1} reloaded from {saved}")
            candidate.subset_score = subset_score
            failure = self.failure(candidate)
            record.full_runs.append(FullRun(candidate.hyperparameters, candidate.validation, candidate.loss,
                                            len(candidate.curves.get("loss", [])), candidate.restored_epoch,
                                            candidate.cut_short, "FAILED" if failure else "COMPLETED", failure))
            if fresh:  # a reloaded run was reported by the run that trained it
                self.watch.full_run_ended(round_no, candidate.design, candidate.validation, failure)
            if not failure:
                confirmed.append(candidate)
                self.candidates.append(candidate)
            epochs = len(candidate.curves.get("loss", []))
            self.log(f"redesign: full-data run {rank + 1}/{len(result.best)} (round {round_no}, "
                     f"{candidate.design.family}): validation {self.cfg.goal.metric} {candidate.validation:.4f}, "
                     f"{epochs} epochs, weights of epoch {candidate.restored_epoch} kept"
                     + (", cut short by the budget" if candidate.cut_short else "")
                     + (f" [FAILED: {failure}]" if failure else "") + f" | {self.progress()}")
        round_best = self.best(confirmed)
        record.best_validation = round_best.validation if round_best else None
        return confirmed

    def failure(self, candidate: Candidate) -> str | None:
        """Why a full-data run cannot be chosen: its loss went non-finite, or it does no better on
        validation than always predicting the training prior. None when it can."""
        diverged = next((i + 1 for i, v in enumerate(candidate.curves.get("loss", [])) if not math.isfinite(v)), None)
        if diverged is not None or not math.isfinite(candidate.validation):
            return f"training diverged: loss not finite at epoch {diverged}" if diverged else "outputs not finite"
        if not self.objective.better_than(candidate.validation, self.floor):
            return (f"validation {self.cfg.goal.metric} {candidate.validation:.4f} is no better than always "
                    f"predicting the training prior ({self.floor:.4f})")
        return None

    def train_on_all(self, design: Design, round_no: int) -> Candidate:
        """Train one searched design on the whole training split and score it on validation."""
        started = time.monotonic()
        fitted = fit_design(design, self.schema, self.splits, self.cfg.train, self.cfg.goal,
                            epochs=self.plan.full_epochs, deadline=self.deadline, verbose=0,
                            on_epoch=self.watch.full_run_started(round_no, design))
        seconds = time.monotonic() - started
        value, loss = score_and_loss(fitted.model, self.cfg.goal, self.splits.validation)
        return Candidate(round_no, design, value, fitted.curves, fitted.model, loss, fitted.restored_epoch,
                         fitted.cut_short, train_score=train_score(fitted.model, self.cfg.goal, self.splits.train,
                                                                   self.search.seed),
                         phase_epochs=fitted.phase_epochs,
                         epoch_seconds=seconds / max(1, len(fitted.curves.get("loss", []))))

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
                             model, loss, members=members)
        self.candidates.append(ensemble)
        record.ensemble_validation, record.ensemble_ranking_loss = value, loss
        self.log(f"redesign: round {round_no} ensemble of the {len(members)} best so far: "
                 f"validation {self.cfg.goal.metric} {value:.4f}")

    def reshape(self, round_no: int, result: RoundResult, confirmed: list[Candidate], record: RoundRecord) -> None:
        """Diagnose the round's best full-data run and change the next round's space."""
        round_best = self.best(confirmed)
        complete = round_best if round_best is not None and not round_best.cut_short else None
        record.diagnoses = round_diagnoses(complete.curves if complete else None,
                                           [t.status for t in result.trials], self.cfg.goal, self.search.diagnosis,
                                           complete.train_score if complete else None)
        if round_best is not None and complete is None:
            self.log(f"redesign: round {round_no}: its best full-data run was cut short by the time budget; "
                     "its curves are not diagnosed")
        self.plan, record.changes = adjust(self.plan, record.diagnoses,
                                           round_best.hyperparameters if round_best else self.defaults)
        for d in record.diagnoses:
            self.log(f"redesign: round {round_no} diagnosis: {d.kind} ({d.evidence})")
        for change in record.changes:
            self.log(f"redesign: round {round_no + 1} change: {change}")
        best_single = self.best([c for c in self.candidates if not c.design.is_ensemble])
        if best_single is not None:
            self.defaults, self.start = best_single.hyperparameters, best_single
