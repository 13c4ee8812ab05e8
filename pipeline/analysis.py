"""Error analysis on the test split: which classes and examples fail, and which slices of the
data (per class, per category of a column, per bin of a numeric column) are weakest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.objective import Objective
from pipeline.tasks import Task

NUMERIC_BINS = 4
MIN_SLICE_ROWS = 5


def confused_pairs(y_true: np.ndarray, labels: np.ndarray, classes: list[str], top: int = 5) -> list[dict]:
    """The most frequent (true, predicted) mistakes."""
    mistakes = pd.DataFrame({"true": np.asarray(classes)[y_true], "predicted": np.asarray(classes)[labels]})
    mistakes = mistakes[mistakes["true"] != mistakes["predicted"]]
    counts = mistakes.value_counts().head(top)
    return [{"true": t, "predicted": p, "count": int(c)} for (t, p), c in counts.items()]


def slice_metrics(task: Task, metric: str, y_true: np.ndarray, raw: np.ndarray, classes: list[str],
                  raw_rows: pd.DataFrame | None) -> pd.DataFrame:
    """The goal metric (within a class: its recall) per slice, weakest first.

    Slices: each class; each value of a categorical column; each quartile bin of a numeric
    column. Slices under MIN_SLICE_ROWS rows are left out (too noisy to name).
    """
    rows = []

    def add(kind, column, value, mask, slice_metric=metric):
        if mask.sum() >= MIN_SLICE_ROWS:
            rows.append({"slice": kind, "column": column, "value": str(value), "rows": int(mask.sum()),
                         "metric": "recall" if kind == "class" else metric,
                         "score": task.score(slice_metric, y_true[mask], raw[mask])})

    if task.single_label:
        for index, name in enumerate(classes):
            add("class", "target", name, y_true == index, slice_metric="accuracy")
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
    order = Objective(metric).order(frame["score"].tolist(), worst_first=True)
    return frame.iloc[order].reset_index(drop=True)
