"""Stage 5, train: fit the initial design, with early stopping and the best epoch's weights."""

import time

import keras
import pandas as pd

from pipeline import compute
from pipeline.config import PipelineConfig
from pipeline.designs import Design
from pipeline.files import write_json
from pipeline.paths import Paths
from pipeline.plots import curves_png
from pipeline.prepared import load_splits
from pipeline.tracking import StageRun
from pipeline.training import fit_design, score


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    splits, schema = load_splits(paths)
    design = Design.load(paths.design / "design.json")
    chosen = compute.apply(cfg.compute)
    print(f"train: on {chosen.describe(design.hyperparameters.get('batch_size'))}")
    started = time.monotonic()
    fitted = fit_design(design, schema, splits, cfg.train, cfg.goal,
                        deadline=tracker.started + cfg.train.time_budget_s, on_epoch=tracker.log_epoch)
    model = fitted.model
    paths.train.mkdir(parents=True, exist_ok=True)
    model.save(paths.train / "model.keras")
    frame = pd.DataFrame(fitted.curves)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame.to_csv(paths.train / "history.csv", index=False)
    curves_png(frame, paths.train / "curves.png", "learning curves of the initial design")

    val_value = score(model, cfg.goal, splits.validation)
    result = {
        "metric": cfg.goal.metric,
        "train": score(model, cfg.goal, splits.train),
        "validation": val_value,
        "epochs_run": len(frame),
        "restored_epoch": fitted.restored_epoch,  # the weights kept (best monitored value)
        "cut_short": fitted.cut_short,  # stopped by train.time_budget_s
        "phase_epochs": list(fitted.phase_epochs),  # per phase, up to the kept weights (two: fine-tuned backbone)
        "fine_tuned": fitted.fine_tuned,
        "seconds": round(time.monotonic() - started, 2),
        "backend": keras.backend.backend(),
        "devices": [d.name for d in chosen.devices],
        "precision": chosen.precision,
    }
    write_json(paths.metrics / "train.json", result)
    tracker.log_metrics({f"final_{k}": result[k] for k in ("train", "validation", "seconds")})
    tracker.log_artifact(paths.train / "history.csv")
    if fitted.fine_tuned:
        print(f"train: phase 2 fine-tuned {fitted.fine_tuned}; epochs per phase kept: {fitted.phase_epochs}")
    print(f"train: validation {cfg.goal.metric} {val_value:.4f} after {result['epochs_run']} epochs, weights of epoch "
          f"{fitted.restored_epoch} kept ({result['seconds']} s{', cut short by train.time_budget_s' if fitted.cut_short else ''})")
    return result
