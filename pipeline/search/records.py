"""What the redesign loop records: one row per subset trial, and one entry per round (what was
searched, confirmed on all data, averaged, diagnosed and changed). Written by the loop, read by
the redesign stage (history.md) and the report, always through these records."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.files import write_json


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # overfitting | underfitting | divergence | stalled
    evidence: str


TRIAL_COLUMNS = ("round", "data_fraction", "trial", "status", "score", "seconds", "worker", "resumed", "message")


@dataclass
class TrialRecord:
    """One subset trial, as KerasTuner finished it."""

    trial_id: str
    status: str
    score: float | None
    seconds: float | None  # None: finished by an earlier run of a resumed search
    hyperparameters: dict
    message: str = ""
    curves: dict = field(default_factory=dict)
    resumed: bool = False
    worker: str = ""  # the KerasTuner tuner id that ran it ("tuner0" in one process)

    @property
    def values(self) -> dict:
        """The design's hyperparameter values, without KerasTuner's own `tuner/...` entries."""
        return {k: v for k, v in self.hyperparameters.items() if not k.startswith("tuner/")}

    def row(self, round_no: int, fraction: float) -> dict:
        """The trial as a row of trials.csv: TRIAL_COLUMNS, then its hyperparameters."""
        fixed = (round_no, round(fraction, 4), self.trial_id, self.status, self.score, self.seconds, self.worker,
                 self.resumed, self.message)
        return {**dict(zip(TRIAL_COLUMNS, fixed)), **self.hyperparameters}


def write_trials(rows: list[dict], path: Path) -> None:
    """trials.csv: one row per trial; a search that ran none (its budget spent before the first)
    still writes the columns, so every reader can load it."""
    pd.DataFrame(rows, columns=None if rows else list(TRIAL_COLUMNS)).to_csv(path, index=False)


@dataclass(frozen=True)
class FullRun:
    """A design trained on the whole training split."""

    hyperparameters: dict
    validation: float
    ranking_loss: float  # breaks ties in the goal metric (Task.ranking_loss)
    epochs: int
    restored_epoch: int = 0
    cut_short: bool = False  # stopped by the time budget
    status: str = "COMPLETED"  # FAILED: never chosen (see reason)
    reason: str | None = None


@dataclass
class RoundRecord:
    """One round of the redesign loop."""

    round: int
    data_fraction: float
    trials: int
    failed: int
    round_stop: str
    space: dict
    trial_epochs: int
    full_epochs: int
    full_runs: list[FullRun] = field(default_factory=list)
    best_validation: float | None = None
    ensemble_validation: float | None = None
    ensemble_ranking_loss: float | None = None
    fidelity: float | None = None  # rank correlation of subset-trial and full-data scores of the same designs
    fidelity_designs: int = 0
    trials_seconds: float | None = None  # wall time of the round's subset trials (all workers)
    workers: int = 1  # processes that ran them
    diagnoses: list[Diagnosis] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RoundRecord:
        data = dict(data)
        data["full_runs"] = [FullRun(**run) for run in data.get("full_runs", [])]
        data["diagnoses"] = [Diagnosis(**d) for d in data.get("diagnoses", [])]
        return cls(**data)


def save_history(records: list[RoundRecord], path: Path) -> None:
    write_json(path, [r.to_dict() for r in records])


def load_history(path: Path) -> list[RoundRecord]:
    return [RoundRecord.from_dict(entry) for entry in json.loads(Path(path).read_text())]


def _shown(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def history_markdown(records: list[RoundRecord], metric: str, stop_reason: str) -> str:
    """The redesign history for people: per round, what was searched, found, diagnosed, changed."""
    lines = ["# Redesign history", "", f"Stopped: {stop_reason}.", ""]
    for entry in records:
        lines += [
            f"## Round {entry.round}",
            "",
            f"- searched on {entry.data_fraction:.0%} of the training data: {entry.trials} trials "
            f"({entry.failed} failed), {entry.trial_epochs} epochs at most each"
            + (f", in {entry.trials_seconds:.0f} s" if entry.trials_seconds is not None else "")
            + (f" on {entry.workers} workers" if entry.workers > 1 else "") + f"; round ended: {entry.round_stop}",
            f"- trained on all the training data: {len(entry.full_runs)} design(s); best validation "
            f"{metric}: {_shown(entry.best_validation)}",
        ]
        failed = [r for r in entry.full_runs if r.status == "FAILED"]
        lines += [f"- full-data run FAILED, never chosen: {r.reason}" for r in failed]
        if entry.fidelity_designs:
            lines.append(f"- search fidelity: rank correlation {_shown(entry.fidelity)} between subset-trial and "
                         f"full-data validation scores of {entry.fidelity_designs} design(s)")
        if entry.ensemble_validation is not None:
            lines.append(f"- ensemble of the best designs so far: validation {metric} {entry.ensemble_validation:.4f}")
        lines += [f"- diagnosis: **{d.kind}**: {d.evidence}" for d in entry.diagnoses]
        if not entry.diagnoses:
            lines.append("- diagnosis: none (healthy curves)")
        lines += [f"- next round: {change}" for change in entry.changes]
        lines.append("")
    return "\n".join(lines)
