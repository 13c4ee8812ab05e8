"""How sure a test score is: a percentile bootstrap interval over resampled test rows.

The metrics themselves belong to the task (:meth:`pipeline.tasks.Task.score`), and which way
is better to the objective (:class:`pipeline.objective.Objective`).
"""

from __future__ import annotations

import numpy as np

from pipeline.tasks import Task


def bootstrap_interval(task: Task, metric: str, y_true: np.ndarray, raw: np.ndarray, rounds: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the metric over resampled test rows."""
    rng = np.random.default_rng(seed)
    y_true, raw = np.asarray(y_true), np.asarray(raw)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, len(y_true), len(y_true))
        value = task.score(metric, y_true[rows], raw[rows])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
