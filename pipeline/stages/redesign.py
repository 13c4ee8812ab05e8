"""Stage 6, redesign: if the trained design misses the goal on validation, search for a better one.

The loop (pipeline/search/rounds.py) searches on a subset, confirms the best designs on all the
training data, diagnoses their learning curves and reshapes the space, until the goal is met on
validation or a budget ends. The winner replaces the trained model only if it is better on
validation; with `search.ensemble`, the average of the best designs competes like any design.
Writes the chosen model and its layer table, a summary, every trial (trials.csv) and the
redesign history (history.json for machines, history.md for people).
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.designs import Design
from pipeline.files import read_json, write_json
from pipeline.models.builder import layer_table, load_model
from pipeline.paths import Paths
from pipeline.prepared import load_splits
from pipeline.search.records import history_markdown, save_history
from pipeline.search.rounds import Candidate, RedesignLoop
from pipeline.tracking import StageRun
from pipeline.training import score_and_loss


def _keep_trained(paths: Paths, initial: Design) -> None:
    """The trained initial design stays the chosen model."""
    shutil.copy(paths.train / "model.keras", paths.redesign / "model.keras")
    shutil.copy(paths.train / "history.csv", paths.redesign / "curves.csv")
    initial.save(paths.redesign / "design.json")


def write_curves(curves: dict, path) -> None:
    """The chosen model's learning curves (per epoch), for `dvc plots`."""
    frame = pd.DataFrame({name: pd.Series(values, dtype="float64") for name, values in curves.items()})
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame.to_csv(path, index=False)


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    trained = read_json(paths.metrics / "train.json")
    initial = Design.load(paths.design / "design.json")
    objective = cfg.objective
    out = paths.redesign
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    paths.search_state.mkdir(parents=True, exist_ok=True)  # declared (persisted) even when no search runs
    summary = {"metric": cfg.goal.metric, "threshold": cfg.goal.threshold,
               "trained_validation": trained["validation"], "searched": False}

    n_validation = int(np.load(paths.split / "indices.npz")["validation"].size)
    margin = objective.stop_margin(cfg.search.goal_margin, n_validation)
    summary["stop_margin"] = margin
    if objective.met(trained["validation"], margin):
        _keep_trained(paths, initial)
        summary.update(chosen="trained", reason="the trained initial design meets the goal on validation"
                       + (f" by the margin {margin:.4f}" if margin else ""),
                       validation=trained["validation"], trials=0)
    else:
        summary.update(_search_and_choose(cfg, paths, tracker, initial, trained))

    write_json(out / "layers.json", layer_table(load_model(out / "model.keras")))  # for the report
    summary["goal_met_on_validation"] = objective.met(summary["validation"])
    summary["margin_on_validation"] = objective.margin(summary["validation"])
    write_json(out / "summary.json", summary)
    write_json(paths.metrics / "redesign.json", {k: summary[k] for k in (
        "searched", "trials", "chosen", "validation", "goal_met_on_validation")})
    tracker.log_metrics({"validation": summary["validation"], "trials": summary["trials"]})
    tracker.set_tags({"redesign.chosen": summary["chosen"], "redesign.reason": summary["reason"]})
    for name in ("summary.json", "trials.csv", "history.json", "history.md", "curves.csv"):
        tracker.log_artifact(out / name)
    print(f"redesign: kept the {summary['chosen']} model ({summary['reason']}); "
          f"validation {cfg.goal.metric} {summary['validation']:.4f}")
    return summary


def _search_and_choose(cfg: PipelineConfig, paths: Paths, tracker: StageRun, initial: Design, trained: dict) -> dict:
    splits, schema = load_splits(paths)
    goal = cfg.goal
    history = pd.read_csv(paths.train / "history.csv")
    trained_model = load_model(paths.train / "model.keras")
    _, trained_loss = score_and_loss(trained_model, goal, splits.validation)
    trained_run = Candidate(0, initial, trained["validation"],
                            {c: history[c].tolist() for c in history.columns if c != "epoch"}, trained_model,
                            trained_loss)
    loop = RedesignLoop(cfg, schema, splits, initial, search_state(cfg, paths), on_trial=_trial_logger(tracker),
                        on_candidate=_candidate_logger(tracker))
    outcome = loop.run(prior=(trained_run,))
    pd.DataFrame(outcome.trials).to_csv(paths.redesign / "trials.csv", index=False)
    save_history(outcome.history, paths.redesign / "history.json")
    (paths.redesign / "history.md").write_text(history_markdown(outcome.history, goal.metric, outcome.stop_reason))
    for entry in outcome.history:
        if entry.best_validation is not None:
            tracker.log_metrics({"round_best_validation": entry.best_validation}, step=entry.round)
    facts = {"searched": True, "tuner": cfg.search.tuner, "trials": len(outcome.trials),
             "rounds": len(outcome.history), "stop_reason": outcome.stop_reason, "search_seconds": outcome.seconds,
             "diagnoses": sorted({d.kind for e in outcome.history for d in e.diagnoses})}
    print(f"redesign: search stopped ({outcome.stop_reason}) after {len(outcome.history)} round(s), "
          f"{len(outcome.trials)} trials, {outcome.seconds} s")

    best = loop.best()
    if best is trained_run:
        _keep_trained(paths, initial)
        return {**facts, "chosen": "trained", "validation": trained["validation"],
                "reason": f"no searched design or ensemble beat the trained one ({outcome.stop_reason})"}

    best.model.save(paths.redesign / "model.keras")
    write_curves(best.curves, paths.redesign / "curves.csv")
    best.design.save(paths.redesign / "design.json")
    ensembles = [c for c in outcome.candidates if c.design.is_ensemble]
    if ensembles:
        facts["ensemble_validation"] = loop.best(ensembles).validation
    facts["validation_loss"] = {"trained": trained_loss, "chosen": best.loss}
    return {**facts, "chosen": "ensemble" if best.design.is_ensemble else "search",
            "reason": f"search found a better design ({outcome.stop_reason}); "
                      "equal goal metrics are decided by the lower validation loss",
            "validation": best.validation, "design": best.design.family}


def search_state(cfg: PipelineConfig, paths: Paths) -> Path:
    """The search's persistent folder: kept when it holds this very search (resume), else emptied.

    The fingerprint covers every setting that shapes the trials and the data they see; the time
    budget is left out, so a search that ran out of time can go on with a larger one.
    """
    settings = cfg.model_dump(mode="json", exclude={"tracking": True, "train": {"verbose"},
                                                    "search": {"time_budget_s", "resume"}})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in (paths.split / "indices.npz", paths.prepared / "data.npz", paths.design / "design.json"):
        digest.update(Path(name).read_bytes())
    fingerprint = {"fingerprint": digest.hexdigest()}
    state, marker = paths.search_state, paths.search_state / "fingerprint.json"
    if state.exists() and not (cfg.search.resume and marker.is_file() and read_json(marker) == fingerprint):
        shutil.rmtree(state)
    elif (state / "round_1").exists():
        print(f"redesign: resuming the search saved in {state}")
    write_json(marker, fingerprint)
    return state


def _trial_logger(tracker: StageRun):
    def log(round_no: int, fraction: float, record) -> None:
        tracker.log_child(
            f"round{round_no}-trial-{record.trial_id}", record.hyperparameters,
            {"kind": "redesign-trial", "status": record.status, "round": round_no,
             "data_fraction": round(fraction, 4), "message": record.message},
            record.curves, {"val_goal_best": record.score, "seconds": record.seconds},
        )
    return log


def _candidate_logger(tracker: StageRun):
    def log(candidate: Candidate) -> None:
        tracker.log_child(
            f"round{candidate.round}-full-data", candidate.hyperparameters,
            {"kind": "redesign-full-training", "round": candidate.round, "data_fraction": 1.0},
            candidate.curves, {"val_goal_best": candidate.validation},
        )
    return log
