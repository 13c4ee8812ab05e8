"""Stage 6, redesign: if the trained design misses the goal on validation, search for a better one.

The loop (pipeline/search/rounds.py) searches on a subset, confirms the best designs on all the
training data, diagnoses their learning curves and reshapes the space, until the goal is met on
validation or a budget ends. The winner replaces the trained model only if it is better on
validation; with `search.ensemble`, the average of the top models is kept if it beats both.
Writes the chosen model, a summary, every trial (trials.csv) and the redesign history
(history.json for machines, history.md for people).
"""

import shutil

import pandas as pd

from pipeline import metrics
from pipeline.config import PipelineConfig
from pipeline.paths import Paths, load_splits, read_json, write_json
from pipeline.search import ensemble_of, run_rounds
from pipeline.tracking import StageRun


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "min" else a > b


def _keep_trained(paths: Paths, initial: dict) -> None:
    """The trained initial design stays the chosen model."""
    shutil.copy(paths.train / "model.keras", paths.redesign / "model.keras")
    write_json(paths.redesign / "design.json", initial)


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    trained = read_json(paths.metrics / "train.json")
    initial = read_json(paths.design / "design.json")
    out = paths.redesign
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    summary = {"metric": cfg.goal.metric, "threshold": cfg.goal.threshold,
               "trained_validation": trained["validation"], "searched": False}

    if metrics.goal_met(trained["validation"], cfg.goal.threshold, cfg.goal.metric, cfg.search.goal_margin):
        _keep_trained(paths, initial)
        summary.update(chosen="trained", reason="the trained initial design meets the goal on validation",
                       validation=trained["validation"], trials=0)
    else:
        summary.update(_search_and_choose(cfg, paths, tracker, initial, trained))

    summary["goal_met_on_validation"] = metrics.goal_met(summary["validation"], cfg.goal.threshold, cfg.goal.metric)
    summary["margin_on_validation"] = metrics.margin(summary["validation"], cfg.goal.threshold, cfg.goal.metric)
    write_json(out / "summary.json", summary)
    write_json(paths.metrics / "redesign.json", {k: summary[k] for k in (
        "searched", "trials", "chosen", "validation", "goal_met_on_validation")})
    tracker.log_metrics({"validation": summary["validation"], "trials": summary["trials"]})
    tracker.set_tags({"redesign.chosen": summary["chosen"], "redesign.reason": summary["reason"]})
    for name in ("summary.json", "trials.csv", "history.json", "history.md"):
        tracker.log_artifact(out / name)
    print(f"redesign: kept the {summary['chosen']} model ({summary['reason']}); "
          f"validation {cfg.goal.metric} {summary['validation']:.4f}")
    return summary


def _search_and_choose(cfg: PipelineConfig, paths: Paths, tracker: StageRun, initial: dict, trained: dict) -> dict:
    splits, schema = load_splits(paths)
    goal = cfg.goal
    outcome = run_rounds(cfg, schema, splits, initial, paths.redesign / "tuner",
                         on_trial=_trial_logger(tracker), on_candidate=_candidate_logger(tracker))
    pd.DataFrame(outcome.trials).to_csv(paths.redesign / "trials.csv", index=False)
    write_json(paths.redesign / "history.json", outcome.history)
    (paths.redesign / "history.md").write_text(history_markdown(outcome.history, goal.metric, outcome.stop_reason))
    for entry in outcome.history:
        if entry["best_validation"] is not None:
            tracker.log_metrics({"round_best_validation": entry["best_validation"]}, step=entry["round"])
    facts = {"searched": True, "tuner": cfg.search.tuner, "trials": len(outcome.trials),
             "rounds": len(outcome.history), "stop_reason": outcome.stop_reason, "search_seconds": outcome.seconds,
             "diagnoses": sorted({d["kind"] for e in outcome.history for d in e["diagnoses"]})}
    print(f"redesign: search stopped ({outcome.stop_reason}) after {len(outcome.history)} round(s), "
          f"{len(outcome.trials)} trials, {outcome.seconds} s")

    best = outcome.best(goal.direction)
    if best is None or not _better(best.validation, trained["validation"], goal.direction):
        _keep_trained(paths, initial)
        why = "no search trial completed" if best is None else "no searched design beat the trained one"
        return {**facts, "chosen": "trained", "reason": f"{why} ({outcome.stop_reason})",
                "validation": trained["validation"]}

    chosen, value, design = best.model, best.validation, best.design
    facts["best_single_validation"] = value
    if cfg.search.ensemble and len(outcome.candidates) >= 2:
        ranked = sorted(outcome.candidates, key=lambda c: c.validation, reverse=goal.direction == "max")
        members = ranked[: max(2, cfg.search.top_k)]
        ensemble = ensemble_of([m.model for m in members], schema)
        ensemble_value = metrics.compute(goal.task, goal.metric, splits["validation"][1],
                                         ensemble.predict(splits["validation"][0], batch_size=1024, verbose=0))
        facts["ensemble_validation"] = ensemble_value
        print(f"redesign: ensemble of {len(members)}: validation {goal.metric} {ensemble_value:.4f} "
              f"(best single {value:.4f})")
        if _better(ensemble_value, value, goal.direction):
            chosen, value = ensemble, ensemble_value
            design = {"family": "ensemble", "members": [m.design for m in members]}
    chosen.save(paths.redesign / "model.keras")
    write_json(paths.redesign / "design.json", design)
    return {**facts, "chosen": "ensemble" if design["family"] == "ensemble" else "search",
            "reason": f"search found a better design ({outcome.stop_reason})", "validation": value,
            "design": design["family"]}


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
    def log(candidate) -> None:
        tracker.log_child(
            f"round{candidate.round}-full-data", candidate.hyperparameters,
            {"kind": "redesign-full-training", "round": candidate.round, "data_fraction": 1.0},
            candidate.curves, {"val_goal_best": candidate.validation},
        )
    return log


def history_markdown(history: list[dict], metric: str, stop_reason: str) -> str:
    """The redesign history for people: per round, what was searched, found, diagnosed, changed."""
    lines = ["# Redesign history", "", f"Stopped: {stop_reason}.", ""]
    for entry in history:
        best = entry["best_validation"]
        lines += [
            f"## Round {entry['round']}",
            "",
            f"- searched on {entry['data_fraction']:.0%} of the training data: {entry['trials']} trials "
            f"({entry['failed']} failed), {entry['trial_epochs']} epochs at most each; round ended: {entry['round_stop']}",
            f"- trained on all the training data: {len(entry['full_runs'])} design(s); best validation "
            f"{metric}: {'-' if best is None else f'{best:.4f}'}",
        ]
        for d in entry["diagnoses"]:
            lines.append(f"- diagnosis: **{d['kind']}**: {d['evidence']}")
        if not entry["diagnoses"]:
            lines.append("- diagnosis: none (healthy curves)")
        for change in entry["changes"]:
            lines.append(f"- next round: {change}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("redesign")
