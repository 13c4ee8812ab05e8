"""Stage 5, train: fit the initial design with early stopping on the goal metric."""

import time

import keras
import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.metrics import goal_met
from pipeline.paths import Paths, load_splits, read_json, write_json
from pipeline.tracking import StageRun
from pipeline.training import GOAL_LOG_KEY, fit_design, score


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    splits, schema = load_splits(paths)
    design = read_json(paths.design / "design.json")
    started = time.monotonic()
    model, history = fit_design(
        design, schema, splits, cfg.goal, epochs=cfg.train.epochs,
        patience=cfg.train.early_stopping_patience, seed=cfg.train.seed, verbose=cfg.train.verbose,
        monitor=cfg.train.early_stopping_monitor,
    )
    paths.train.mkdir(parents=True, exist_ok=True)
    model.save(paths.train / "model.keras")
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame.to_csv(paths.train / "history.csv", index=False)

    val_value = score(model, cfg.goal, *splits["validation"])
    result = {
        "metric": cfg.goal.metric,
        "train": score(model, cfg.goal, *splits["train"]),
        "validation": val_value,
        "threshold": cfg.goal.threshold,
        "goal_met_on_validation": goal_met(val_value, cfg.goal.threshold, cfg.goal.metric),
        "epochs_run": len(frame),
        "best_epoch": int(frame[GOAL_LOG_KEY].idxmax() if cfg.goal.direction == "max" else frame[GOAL_LOG_KEY].idxmin()) + 1,
        "seconds": round(time.monotonic() - started, 2),
        "backend": keras.backend.backend(),
    }
    write_json(paths.metrics / "train.json", result)
    for _, row in frame.iterrows():
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    tracker.log_metrics({f"final_{k}": result[k] for k in ("train", "validation", "seconds")})
    tracker.log_artifact(paths.train / "history.csv")
    print(f"train: validation {cfg.goal.metric} {val_value:.4f} after {result['epochs_run']} epochs "
          f"({result['seconds']} s); goal {'met' if result['goal_met_on_validation'] else 'not met'} on validation")
    return result


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("train")
