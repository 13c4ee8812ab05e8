"""Stage 6, redesign: if the trained design misses the goal on validation, search for a better one.

The search (pipeline/search.py) starts from the initial design and stops at the goal, the time
budget or the trial budget. The best searched design is then trained like the initial one
(full epochs, early stopping) and kept only if it beats the trained model on validation.
"""

import shutil
import time

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.metrics import goal_met, margin
from pipeline.paths import Paths, load_splits, read_json, write_json
from pipeline.search import run_search
from pipeline.tracking import StageRun
from pipeline.training import fit_design, score


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

    if trained["goal_met_on_validation"]:
        _keep_trained(paths, initial)
        summary.update(chosen="trained", reason="the trained initial design meets the goal on validation",
                       validation=trained["validation"], trials=0)
    else:
        summary.update(_search_and_choose(cfg, paths, tracker, initial, trained))

    summary["goal_met_on_validation"] = goal_met(summary["validation"], cfg.goal.threshold, cfg.goal.metric)
    summary["margin_on_validation"] = margin(summary["validation"], cfg.goal.threshold, cfg.goal.metric)
    write_json(out / "summary.json", summary)
    write_json(paths.metrics / "redesign.json", {k: summary[k] for k in (
        "searched", "trials", "chosen", "validation", "goal_met_on_validation")})
    tracker.log_metrics({"validation": summary["validation"], "trials": summary["trials"]})
    tracker.set_tags({"redesign.chosen": summary["chosen"], "redesign.reason": summary["reason"]})
    tracker.log_artifact(out / "summary.json")
    if (out / "trials.csv").exists():
        tracker.log_artifact(out / "trials.csv")
    print(f"redesign: kept the {summary['chosen']} model ({summary['reason']}); "
          f"validation {cfg.goal.metric} {summary['validation']:.4f}")
    return summary


def _search_and_choose(cfg: PipelineConfig, paths: Paths, tracker: StageRun, initial: dict, trained: dict) -> dict:
    splits, schema = load_splits(paths)
    started = time.monotonic()

    def log_trial(record):
        with tracker.nested(f"trial-{record.trial_id}") as mlflow:
            if mlflow is None:
                return
            mlflow.log_params({k: str(v) for k, v in record.hyperparameters.items()})
            mlflow.set_tags({"status": record.status, "kind": "redesign-trial", "message": record.message})
            for name, values in record.curves.items():
                for step, value in enumerate(values):
                    if value == value and abs(value) != float("inf"):
                        mlflow.log_metric(name, value, step=step)
            if record.score is not None and record.score == record.score and abs(record.score) != float("inf"):
                mlflow.log_metric("val_goal_best", record.score)
            mlflow.log_metric("seconds", record.seconds)

    result = run_search(cfg, schema, splits, initial, paths.redesign / "tuner", on_trial_end=log_trial)
    trials = pd.DataFrame([{"trial": r.trial_id, "status": r.status, "score": r.score, "seconds": r.seconds,
                            "message": r.message,
                            **{k: v for k, v in r.hyperparameters.items()}} for r in result.trials])
    trials.to_csv(paths.redesign / "trials.csv", index=False)
    facts = {"searched": True, "tuner": cfg.search.tuner, "trials": len(result.trials),
             "stop_reason": result.stop_reason, "best_trial_score": result.best_score,
             "search_seconds": round(time.monotonic() - started, 2)}
    print(f"redesign: search stopped ({result.stop_reason}) after {len(result.trials)} trials")

    if result.best_hyperparameters is None:
        _keep_trained(paths, initial)
        return {**facts, "chosen": "trained", "reason": "no search trial completed", "validation": trained["validation"]}

    best_design = result.hypermodel.design_from(result.best_hyperparameters.copy())
    model, _ = fit_design(best_design, schema, splits, cfg.goal, epochs=cfg.train.epochs,
                          patience=cfg.train.early_stopping_patience, seed=cfg.train.seed, verbose=0)
    searched_value = score(model, cfg.goal, *splits["validation"])
    facts["searched_validation"] = searched_value
    if _better(searched_value, trained["validation"], cfg.goal.direction):
        model.save(paths.redesign / "model.keras")
        write_json(paths.redesign / "design.json", best_design)
        return {**facts, "chosen": "search", "reason": f"search found a better design ({result.stop_reason})",
                "validation": searched_value, "design": best_design["family"]}
    _keep_trained(paths, initial)
    return {**facts, "chosen": "trained", "reason": f"no searched design beat the trained one ({result.stop_reason})",
            "validation": trained["validation"]}


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("redesign")
