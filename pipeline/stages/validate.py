"""Stage 7, validate: the chosen model on the held-out test split, against the goal.

Writes the goal verdict with a bootstrap interval (how sure a verdict on this many test rows
is), the task's standard metrics, and the error analysis: confusion matrix, the most confused
classes, the worst test examples, calibration, and the weakest slices of the data; and a
leaderboard: the exported model beside the model it was chosen as (before its refit), the
initial design, the search's other full-data designs and ensembles, and plain baselines fitted
on the same training rows (pipeline/baselines.py).
"""

import time
from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from pipeline import analysis, inputs, metrics
from pipeline.baselines import Entry, fit_baselines
from pipeline.config import PipelineConfig
from pipeline.designs import Design
from pipeline.files import read_json, write_json
from pipeline.images import ImageFiles
from pipeline.models.builder import load_model
from pipeline.paths import Paths
from pipeline.plots import confusion_png, gallery_png, reliability_png, residuals_png, roc_pr_curves, roc_pr_png
from pipeline.prepared import Rows, Splits, load_splits
from pipeline.schema import Schema
from pipeline.tracking import StageRun

WORST_EXAMPLES = 20
BOOTSTRAP_ROUNDS = 1000


class GoalMissed(SystemExit):
    """Raised when the goal is missed and goal.fail_on_miss is true (exit status 1)."""


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    splits, schema = load_splits(paths)
    test = splits.test
    model = load_model(paths.redesign / "model.keras")
    started = time.perf_counter()
    raw = inputs.predict(model, test.x)
    predict_ms = (time.perf_counter() - started) * 1000 / max(1, len(test))
    goal, objective, task = cfg.goal, cfg.objective, schema.task
    value = task.score(goal.metric, test.y, raw)
    met = objective.met(value)
    low, high = metrics.bootstrap_interval(task, goal.metric, test.y, raw, BOOTSTRAP_ROUNDS, seed=cfg.split.seed)
    sure = "sure" if objective.met(low) == objective.met(high) else \
        "not sure: the 95% interval straddles the threshold"
    report = {
        "goal_met": met,
        "metric": goal.metric,
        "value": value,
        "threshold": goal.threshold,
        "direction": objective.direction,
        "margin": objective.margin(value),
        "interval_95": {"low": low, "high": high, "bootstrap_rounds": BOOTSTRAP_ROUNDS},
        "verdict_certainty": sure,
        "test_rows": int(len(test)),
        "all": task.report(test.y, raw, schema.classes),
    }
    out = paths.validate
    out.mkdir(parents=True, exist_ok=True)
    _write_error_analysis(schema, test.y, raw, out)
    report["analysis"] = _analyse(cfg, schema, test, raw, out)
    board = leaderboard(cfg, paths, schema, splits, value, predict_ms)
    report["training_seconds"] = training_seconds(paths)
    report["leaderboard"] = [asdict(entry) for entry in board]
    pd.DataFrame(report["leaderboard"]).to_csv(out / "leaderboard.csv", index=False)
    write_json(paths.metrics / "test.json", report)

    scalars = {k: v for k, v in report["all"].items() if isinstance(v, float)}
    scalars.update({f"residual_{k}": v for k, v in report["all"].get("residuals", {}).items()})
    tracker.log_metrics({goal.metric: value, "margin": report["margin"], "interval_low": low, "interval_high": high,
                         **scalars})
    tracker.set_tags({"goal_met": str(met).lower(), "verdict": "goal met" if met else "goal missed"})
    tracker.log_artifact(out)
    tracker.log_artifact(paths.metrics / "test.json")
    verdict = "MET" if met else "MISSED"
    print(f"validate: test {goal.metric} {value:.4f} (goal {objective.comparison} {goal.threshold}, margin "
          f"{report['margin']:+.4f}): goal {verdict}; 95% interval [{low:.4f}, {high:.4f}] on {len(test)} rows ({sure})")
    baselines = [e for e in board if e.kind == "baseline"]
    if baselines:
        best = objective.best(baselines, value=lambda e: e.test)
        print(f"validate: best plain baseline {best.name}: test {goal.metric} {best.test:.4f} "
              f"({'behind' if objective.better_than(value, best.test) else 'not behind'} the network's {value:.4f})")
    tracker.log_metrics({f"leaderboard.{_slug(e.name)}.test": e.test for e in board})
    for weak in report["analysis"]["weakest_slices"][:3]:
        print(f"validate: weak slice {weak['column']}={weak['value']} ({weak['rows']} rows): "
              f"{weak['metric']} {weak['score']:.4f}")
    if not met and goal.fail_on_miss:
        tracker.close_pipeline("goal missed")
        raise GoalMissed(f"validate: goal missed: test {goal.metric} {value:.4f} is not {objective.comparison} "
                         f"{goal.threshold} (goal.fail_on_miss is true)")
    return report


def leaderboard(cfg: PipelineConfig, paths: Paths, schema: Schema, splits: Splits, test_value: float,
                predict_ms: float) -> list[Entry]:
    """The exported model, the models it came from, and the plain baselines; best test score first."""
    goal = cfg.goal
    trained = read_json(paths.metrics / "train.json")
    chosen = read_json(paths.redesign / "summary.json")
    refit = chosen.get("refit") or {}
    seconds = training_seconds(paths)
    model_file = paths.redesign / "model.keras"
    entries = [Entry(f"exported model ({chosen['design']})", "network", chosen["validation"], test_value,
                     round(seconds, 2), round(predict_ms, 4), round(model_file.stat().st_size / 1024, 1),
                     "refitted on train + validation" + (f" as {refit['averaged']}" if refit.get("averaged") else "")
                     + "; validation score of the selected model" if refit.get("done") else "")]
    earlier = [(paths.redesign / "selected.keras", f"selected model ({chosen['design']}), before its refit",
                chosen["validation"], None)]
    if chosen["chosen"] != "trained" or refit.get("done"):
        initial = Design.load(paths.design / "design.json")
        earlier.append((paths.train / "model.keras", f"initial design ({initial.family})", trained["validation"],
                        trained["seconds"]))
    confirmed = paths.redesign / "confirmed" / "index.json"
    for entry in read_json(confirmed) if confirmed.is_file() else []:
        earlier.append((confirmed.parent / entry["file"], entry["name"],
                        entry["validation"], None))
    for path, name, validation, fit_seconds in earlier:
        if path.is_file():
            model = load_model(path)
            started = time.perf_counter()
            outputs = inputs.predict(model, splits.test.x)
            per_row = (time.perf_counter() - started) * 1000 / max(1, len(splits.test))
            entries.append(Entry(name, "network", validation, schema.task.score(goal.metric, splits.test.y, outputs),
                                 fit_seconds, round(per_row, 4), round(path.stat().st_size / 1024, 1)))
    entries += fit_baselines(schema, splits, goal.metric)
    return cfg.objective.ranked(entries, value=lambda e: e.test)


def training_seconds(paths: Paths) -> float:
    """What the exported model cost to train: the initial training, the search and the refit."""
    chosen = read_json(paths.redesign / "summary.json")
    return (read_json(paths.metrics / "train.json")["seconds"] + chosen.get("search_seconds", 0.0)
            + (chosen.get("refit") or {}).get("seconds", 0.0))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.split(" (")[0]).strip("_")


def _write_error_analysis(schema: Schema, y_test: np.ndarray, raw: np.ndarray, out) -> None:
    """Per-row predictions, and a confusion matrix (CSV for DVC, PNG) or a residual plot."""
    task = schema.task
    predictions = task.predictions_frame(raw, schema.classes)
    if task.single_label:
        names = np.asarray(schema.classes)
        labels = task.labels(raw)
        frame = pd.DataFrame({"actual": names[y_test], "predicted": predictions["prediction"],
                              "confidence": predictions.filter(like="prob_").max(axis=1)})
        frame.to_csv(out / "predictions.csv", index=False)
        frame[["actual", "predicted"]].to_csv(out / "confusion.csv", index=False)
        matrix = confusion_matrix(y_test, labels, labels=np.arange(len(names)))
        confusion_png(matrix, list(names), out / "confusion.png", "test confusion matrix")
        if len(np.unique(y_test)) > 1:
            roc, pr = roc_pr_curves(y_test, raw)
            pd.DataFrame({"fpr": roc["fpr"], "tpr": roc["tpr"]}).to_csv(out / "roc.csv", index=False)
            pd.DataFrame({"recall": pr["recall"], "precision": pr["precision"]}).to_csv(out / "pr.csv", index=False)
            averaged = "" if np.ndim(raw) == 1 or np.shape(raw)[1] == 1 else " (micro-averaged over classes)"
            roc_pr_png(roc, pr, out / "roc_pr.png", f"test ROC and precision-recall{averaged}")
    elif task.predicts_value:
        pred = predictions["prediction"].to_numpy()
        pd.DataFrame({"actual": y_test, "predicted": pred, "residual": pred - y_test}).to_csv(
            out / "predictions.csv", index=False)
        residuals_png(y_test, pred, out / "residuals.png", "test: predicted vs true")
    else:
        frame = pd.DataFrame(task.labels(raw), columns=[f"pred_{c}" for c in schema.classes])
        frame[[f"true_{c}" for c in schema.classes]] = y_test.astype(int)
        frame.to_csv(out / "predictions.csv", index=False)


def _analyse(cfg: PipelineConfig, schema: Schema, test: Rows, raw: np.ndarray, out) -> dict:
    """Worst examples, calibration, confused pairs and weakest slices; pictures and CSVs into `out`."""
    task, y_test = schema.task, test.y
    scores = task.example_scores(y_test, raw)
    worst = scores.sort_values("error", ascending=False, kind="stable").head(WORST_EXAMPLES)
    table = test.raw if isinstance(test.raw, pd.DataFrame) else None
    result: dict = {}
    rows = worst.copy()
    rows.insert(0, "test_row", worst.index)
    if task.single_label:
        names = np.asarray(schema.classes)
        rows.insert(1, "true", names[y_test[worst.index]])
        rows["predicted"] = names[worst["predicted_id"]]
        rows = rows.drop(columns="predicted_id")
        labels = scores["predicted_id"].to_numpy()
        result["confused_pairs"] = analysis.confused_pairs(y_test, labels, schema.classes)
        result["calibration"] = reliability_png(scores["confidence"].to_numpy(), (labels == y_test).astype(float),
                                                out / "reliability.png", "test calibration (top class)")
        normalised = confusion_matrix(y_test, labels, labels=np.arange(len(names)), normalize="true")
        confusion_png(normalised.round(2), list(names), out / "confusion_normalised.png",
                      "test confusion matrix (share of each true class)")
    elif task.predicts_value:
        rows.insert(1, "true", y_test[worst.index])
    if schema.input_kind == "image":
        shown = worst.index[:10]
        if isinstance(test.raw, ImageFiles):
            rows["file"] = [test.raw.files[i] for i in worst.index]
            images = test.raw.read(shown)
        else:
            images = np.asarray(test.raw)[shown]
        gallery_png(images, [_caption(rows, i) for i in shown], out / "worst_examples.png",
                    "worst test examples: true -> predicted")
    elif table is not None:
        rows = pd.concat([rows.reset_index(drop=True), table.iloc[worst.index].reset_index(drop=True)], axis=1)
    elif schema.input_kind == "tabular" and schema.features:
        # arrays of a table: add the feature values, the row a user can look up
        values = np.asarray(test.raw)[worst.index]
        rows = pd.concat([rows.reset_index(drop=True), pd.DataFrame(values, columns=schema.features)], axis=1)
    rows.to_csv(out / "worst_examples.csv", index=False)
    slices = analysis.slice_metrics(task, cfg.goal.metric, y_test, np.asarray(raw), schema.classes, table)
    slices.to_csv(out / "slices.csv", index=False)
    result["weakest_slices"] = slices.head(5).to_dict(orient="records")
    return result


def _caption(rows: pd.DataFrame, i: int) -> str:
    if "confidence" in rows:
        return f"{rows.loc[i, 'true']} -> {rows.loc[i, 'predicted']}\n({rows.loc[i, 'confidence']:.2f})"
    if "predicted" in rows:
        return f"{rows.loc[i, 'true']:.3g} -> {rows.loc[i, 'predicted']:.3g}"
    return f"test row {i}"
