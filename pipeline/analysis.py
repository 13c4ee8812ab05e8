"""Error analysis on the test split: which classes and examples fail, how sure the model was, and
which slices of the data (per class, per category of a column, per bin of a numeric column)
are weakest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import metrics

NUMERIC_BINS = 4
MIN_SLICE_ROWS = 5


def confused_pairs(y_true: np.ndarray, labels: np.ndarray, classes: list[str], top: int = 5) -> list[dict]:
    """The most frequent (true, predicted) mistakes."""
    mistakes = pd.DataFrame({"true": np.asarray(classes)[y_true], "predicted": np.asarray(classes)[labels]})
    mistakes = mistakes[mistakes["true"] != mistakes["predicted"]]
    counts = mistakes.value_counts().head(top)
    return [{"true": t, "predicted": p, "count": int(c)} for (t, p), c in counts.items()]


def example_scores(task: str, y_true: np.ndarray, raw: np.ndarray) -> pd.DataFrame:
    """Per test row: prediction, confidence, and `error` (higher: worse) to rank the worst examples."""
    raw = np.asarray(raw, dtype="float64")
    if task == "regression":
        predicted = raw.reshape(-1)
        return pd.DataFrame({"predicted": predicted, "error": np.abs(predicted - y_true)})
    if task == "multilabel":
        wrong = (raw >= 0.5).astype(int) != y_true
        return pd.DataFrame({"labels_wrong": wrong.sum(axis=1), "error": np.abs(raw - y_true).mean(axis=1)})
    probs = np.stack([1 - raw.reshape(-1), raw.reshape(-1)], axis=1) if task == "binary" else raw
    labels = probs.argmax(axis=1)
    p_true = probs[np.arange(len(y_true)), y_true]
    return pd.DataFrame({"predicted_id": labels, "confidence": probs.max(axis=1), "p_true": p_true,
                         "error": 1.0 - p_true})


def slice_metrics(task: str, metric: str, y_true: np.ndarray, raw: np.ndarray, classes: list[str],
                  raw_rows: pd.DataFrame | None) -> pd.DataFrame:
    """The goal metric (accuracy within a class: recall) per slice, weakest first.

    Slices: each class; each value of a categorical column; each quartile bin of a numeric
    column. Slices under MIN_SLICE_ROWS rows are left out (too noisy to name).
    """
    rows = []

    def add(kind, column, value, mask):
        if mask.sum() >= MIN_SLICE_ROWS:
            score = metrics.compute(task, "accuracy" if task in ("binary", "multiclass") and kind == "class"
                                    else metric, y_true[mask], raw[mask])
            rows.append({"slice": kind, "column": column, "value": str(value), "rows": int(mask.sum()),
                         "metric": "recall" if kind == "class" else metric, "score": score})

    if task in ("binary", "multiclass"):
        for index, name in enumerate(classes):
            add("class", "target", name, y_true == index)
    if raw_rows is not None:
        for column in raw_rows.columns:
            values = raw_rows[column]
            if pd.api.types.is_numeric_dtype(values) and values.nunique() > NUMERIC_BINS:
                bins = pd.qcut(values, NUMERIC_BINS, duplicates="drop")
                for interval in bins.cat.categories:
                    add("numeric bin", column, interval, (bins == interval).to_numpy())
            elif values.nunique() <= 20:
                for value in values.dropna().unique():
                    add("category", column, value, (values == value).to_numpy())
    frame = pd.DataFrame(rows, columns=["slice", "column", "value", "rows", "metric", "score"])
    ascending = metric not in metrics.LOWER_IS_BETTER  # weakest first
    return frame.sort_values("score", ascending=ascending, kind="stable").reset_index(drop=True)
