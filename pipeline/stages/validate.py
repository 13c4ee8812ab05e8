"""Stage 7, validate: the chosen model on the held-out test split, against the goal."""

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from pipeline import inputs, metrics
from pipeline.config import PipelineConfig
from pipeline.models import load_model
from pipeline.paths import Paths, load_splits, write_json
from pipeline.plots import confusion_png, residuals_png
from pipeline.tracking import StageRun


class GoalMissed(SystemExit):
    """Raised when the goal is missed and goal.fail_on_miss is true (exit status 1)."""


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    splits, schema = load_splits(paths)
    x_test, y_test = splits["test"]
    model = load_model(paths.redesign / "model.keras")
    raw = inputs.predict(model, x_test)
    goal = cfg.goal
    value = metrics.compute(goal.task, goal.metric, y_test, raw)
    met = metrics.goal_met(value, goal.threshold, goal.metric)
    report = {
        "goal_met": met,
        "metric": goal.metric,
        "value": value,
        "threshold": goal.threshold,
        "direction": goal.direction,
        "margin": metrics.margin(value, goal.threshold, goal.metric),
        "test_rows": int(len(y_test)),
        "all": metrics.task_metrics(goal.task, y_test, raw),
    }
    out = paths.validate
    out.mkdir(parents=True, exist_ok=True)
    _write_error_analysis(schema, y_test, raw, out)
    write_json(paths.metrics / "test.json", report)

    tracker.log_metrics({goal.metric: value, "margin": report["margin"], **report["all"]})
    tracker.set_tags({"goal_met": str(met).lower(), "verdict": "goal met" if met else "goal missed"})
    tracker.log_artifact(out)
    tracker.log_artifact(paths.metrics / "test.json")
    verdict = "MET" if met else "MISSED"
    sign = "<=" if goal.direction == "min" else ">="
    print(f"validate: test {goal.metric} {value:.4f} (goal {sign} {goal.threshold}, margin {report['margin']:+.4f}): goal {verdict}")
    if not met and goal.fail_on_miss:
        tracker.close_pipeline("goal missed")
        raise GoalMissed(
            f"validate: goal missed: test {goal.metric} {value:.4f} is not {sign} {goal.threshold} "
            f"(goal.fail_on_miss is true)"
        )
    return report


def _write_error_analysis(schema, y_test: np.ndarray, raw: np.ndarray, out) -> None:
    """Per-row predictions, and a confusion matrix (CSV for DVC, PNG) or a residual plot."""
    if schema.task == "regression":
        pred = raw.reshape(-1)
        pd.DataFrame({"actual": y_test, "predicted": pred, "residual": pred - y_test}).to_csv(
            out / "predictions.csv", index=False)
        residuals_png(y_test, pred, out / "residuals.png", "test: predicted vs true")
        return
    if schema.task == "multilabel":
        labels = metrics.to_labels(schema.task, raw)
        frame = pd.DataFrame(labels, columns=[f"pred_{c}" for c in schema.classes])
        frame[[f"true_{c}" for c in schema.classes]] = y_test.astype(int)
        frame.to_csv(out / "predictions.csv", index=False)
        return
    labels = metrics.to_labels(schema.task, raw)
    names = np.array(schema.classes)
    if schema.task == "binary":
        confidence = np.where(labels == 1, raw.reshape(-1), 1.0 - raw.reshape(-1))
    else:
        confidence = raw.max(axis=1)
    frame = pd.DataFrame({"actual": names[y_test], "predicted": names[labels], "confidence": confidence})
    frame.to_csv(out / "predictions.csv", index=False)
    frame[["actual", "predicted"]].to_csv(out / "confusion.csv", index=False)
    matrix = confusion_matrix(y_test, labels, labels=np.arange(len(names)))
    confusion_png(matrix, list(names), out / "confusion.png", "test confusion matrix")


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("validate")
