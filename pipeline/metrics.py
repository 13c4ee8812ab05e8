"""Goal metrics computed with scikit-learn from a model's raw outputs.

Raw outputs are what the Keras model returns: probabilities (binary: shape (n,) or (n, 1);
multiclass: (n, classes); multilabel: (n, labels)) or values for regression.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from pipeline.config import LOWER_IS_BETTER


def to_labels(task: str, raw: np.ndarray) -> np.ndarray:
    """Class decisions from raw outputs (threshold 0.5 for sigmoid outputs)."""
    raw = np.asarray(raw)
    if task == "binary":
        return (raw.reshape(-1) >= 0.5).astype("int64")
    if task == "multiclass":
        return raw.argmax(axis=-1)
    if task == "multilabel":
        return (raw >= 0.5).astype("int64")
    raise ValueError(f"to_labels: no labels for task {task!r}")


def compute(task: str, metric: str, y_true: np.ndarray, raw: np.ndarray) -> float:
    """One metric for one task; NaN outputs (a diverged model) give the worst possible score."""
    raw = np.asarray(raw, dtype="float64")
    if not np.all(np.isfinite(raw)):
        return float("inf") if metric in LOWER_IS_BETTER else float("-inf")
    if task == "regression":
        pred = raw.reshape(-1)
        if metric == "rmse":
            return float(np.sqrt(skm.mean_squared_error(y_true, pred)))
        if metric == "mae":
            return float(skm.mean_absolute_error(y_true, pred))
        if metric == "r2":
            return float(skm.r2_score(y_true, pred))
    elif metric == "auc":
        return _auc(task, y_true, raw)
    else:
        labels = to_labels(task, raw)
        if metric == "accuracy":
            return float(skm.accuracy_score(y_true, labels))
        if metric == "balanced_accuracy":
            return float(skm.balanced_accuracy_score(y_true, labels))
        if metric == "macro_f1":
            return float(skm.f1_score(y_true, labels, average="macro", zero_division=0))
    raise ValueError(f"metric {metric!r} is not defined for task {task!r}")


def _auc(task: str, y_true: np.ndarray, raw: np.ndarray) -> float:
    try:
        if task == "binary":
            return float(skm.roc_auc_score(y_true, raw.reshape(-1)))
        if task == "multiclass":
            probs = raw / raw.sum(axis=1, keepdims=True)
            return float(skm.roc_auc_score(y_true, probs, multi_class="ovr", labels=np.arange(raw.shape[1])))
        return float(skm.roc_auc_score(y_true, raw, average="macro"))
    except ValueError:  # a class absent from a small split: AUC is undefined
        return float("nan")


def task_metrics(task: str, y_true: np.ndarray, raw: np.ndarray) -> dict[str, float]:
    """Every goal metric that applies to the task, for reports and comparisons."""
    from pipeline.config import METRICS_BY_TASK

    return {m: compute(task, m, y_true, raw) for m in METRICS_BY_TASK[task]}


def goal_met(value: float, threshold: float, metric: str, margin: float = 0.0) -> bool:
    """Whether `value` reaches `threshold`, by at least `margin` in the metric's direction."""
    if np.isnan(value):
        return False
    return value <= threshold - margin if metric in LOWER_IS_BETTER else value >= threshold + margin


def validation_loss(task: str, y_true: np.ndarray, raw: np.ndarray) -> float:
    """Log loss (classification) or mean squared error (regression): breaks ties in the goal metric.

    On a small validation split many designs score the same accuracy; the loss still tells
    how confidently right (or wrong) each one is.
    """
    raw = np.asarray(raw, dtype="float64")
    if not np.all(np.isfinite(raw)):
        return float("inf")
    if task == "regression":
        return float(skm.mean_squared_error(y_true, raw.reshape(-1)))
    clipped = np.clip(raw, 1e-7, 1 - 1e-7)
    if task == "multiclass":
        return float(skm.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True),
                                  labels=list(range(raw.shape[1]))))
    y = np.asarray(y_true).reshape(clipped.shape[0], -1)
    p = clipped.reshape(y.shape)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


RATE_METRICS = frozenset({"accuracy", "balanced_accuracy"})


def stop_margin(setting: float | str, metric: str, threshold: float, n_validation: int) -> float:
    """How far past the threshold validation must be to call the goal met (see search.goal_margin)."""
    if setting != "auto":
        return float(setting)
    if metric not in RATE_METRICS or n_validation <= 0:
        return 0.0
    return 1.645 * float(np.sqrt(threshold * (1.0 - threshold) / n_validation))


def margin(value: float, threshold: float, metric: str) -> float:
    """How far past the threshold (positive: met), in the metric's own units."""
    return threshold - value if metric in LOWER_IS_BETTER else value - threshold


def report_metrics(task: str, y_true: np.ndarray, raw: np.ndarray, classes: list[str]) -> dict:
    """The standard metrics of a task on held-out data, per class where there are classes."""
    raw = np.asarray(raw, dtype="float64")
    if task == "regression":
        pred = raw.reshape(-1)
        residual = pred - np.asarray(y_true, dtype="float64")
        return {
            "rmse": compute(task, "rmse", y_true, raw), "mae": compute(task, "mae", y_true, raw),
            "r2": compute(task, "r2", y_true, raw),
            "residuals": {"mean": float(residual.mean()), "std": float(residual.std()),
                          "median": float(np.median(residual)), "p05": float(np.percentile(residual, 5)),
                          "p95": float(np.percentile(residual, 95)), "max_abs": float(np.abs(residual).max())},
        }
    labels = to_labels(task, raw)
    result = {
        "accuracy": compute(task, "accuracy", y_true, raw),
        "macro_f1": float(skm.f1_score(y_true, labels, average="macro", zero_division=0)),
        "weighted_f1": float(skm.f1_score(y_true, labels, average="weighted", zero_division=0)),
        "roc_auc": compute(task, "auc", y_true, raw),
        "log_loss": validation_loss(task, y_true, raw),
    }
    if task != "multilabel":
        result["balanced_accuracy"] = compute(task, "balanced_accuracy", y_true, raw)
    index = list(range(len(classes)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, labels, labels=index if task != "multilabel" else None, zero_division=0)
    result["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                           for name, p, r, f, s in zip(classes, precision, recall, f1, support)}
    return result


def bootstrap_interval(task: str, metric: str, y_true: np.ndarray, raw: np.ndarray, rounds: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the metric over resampled test rows."""
    rng = np.random.default_rng(seed)
    y_true, raw = np.asarray(y_true), np.asarray(raw)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, len(y_true), len(y_true))
        value = compute(task, metric, y_true[rows], raw[rows])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
