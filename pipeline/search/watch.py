"""What the redesign loop tells whoever watches it: trials and full-data runs as they start and end.

A `*_started` hook may return an epoch logger, `(epoch, logs) -> None`, that the run calls as
each epoch ends (epoch from 1, logs under Keras' names), so a watcher sees training live.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.designs import Design
from pipeline.search.records import TrialRecord
from pipeline.tracking import LiveRun, NestedRuns, StageRun

EpochLogger = Callable[[int, dict], None]


class SearchWatch:
    """Watches nothing: the base for watchers, and what a loop without one gets."""

    def trial_started(self, round_no: int, fraction: float, trial_id: str, worker: str = "") -> EpochLogger | None:
        return None

    def trial_ended(self, round_no: int, fraction: float, record: TrialRecord) -> None:
        pass

    def full_run_started(self, round_no: int, design: Design) -> EpochLogger | None:
        return None

    def full_run_ended(self, round_no: int, design: Design, validation: float, failure: str | None) -> None:
        pass


class TrackedSearch(SearchWatch):
    """Every trial and full-data run as a nested MLflow run under the stage's run, written live
    (by the process that trains it: the stage, or a search worker)."""

    def __init__(self, tracker: StageRun | NestedRuns):
        self.tracker = tracker
        self.trials: dict[tuple[int, str], LiveRun] = {}
        self.full_run: LiveRun | None = None

    def trial_started(self, round_no, fraction, trial_id, worker=""):
        tags = {"kind": "redesign-trial", "round": round_no, "data_fraction": round(fraction, 4)}
        run = self.tracker.start_child(f"round{round_no}-trial-{trial_id}", {**tags, "worker": worker} if worker else tags)
        if run is None:
            return None
        self.trials[(round_no, trial_id)] = run
        return run.log_epoch

    def trial_ended(self, round_no, fraction, record):
        run = self.trials.pop((round_no, record.trial_id), None)
        if run is None:
            return
        status = "FINISHED" if record.status == "COMPLETED" else "FAILED"
        run.finish(record.hyperparameters, {"status": record.status, "message": record.message},
                   {"val_goal_best": record.score, "seconds": record.seconds}, status)

    def full_run_started(self, round_no, design):
        self.full_run = self.tracker.start_child(f"round{round_no}-full-data", {
            "kind": "redesign-full-training", "round": round_no, "data_fraction": 1.0})
        return None if self.full_run is None else self.full_run.log_epoch

    def full_run_ended(self, round_no, design, validation, failure):
        if self.full_run is None:
            return
        self.full_run.finish(design.values(), {"status": "FAILED" if failure else "COMPLETED", "message": failure or ""},
                             {"val_goal_best": validation}, "FAILED" if failure else "FINISHED")
        self.full_run = None
