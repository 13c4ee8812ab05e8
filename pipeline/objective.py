"""The goal's objective: which way each metric is better, how scores compare, and the goal test.

Modelled on KerasTuner's ``Objective``: the objective owns its direction and ``better_than``, so
no other module flips signs or asks whether a metric is an error. Importing this module is
cheap (no Keras).

    objective = Objective("rmse", threshold=50.0)
    objective.better_than(40.0, 45.0)        # True: lower is better for rmse
    objective.met(48.0, margin=1.0)          # True: 48 <= 50 - 1
    objective.best(runs, value=lambda r: r.validation, loss=lambda r: r.loss)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence, TypeVar

Direction = Literal["max", "min"]
T = TypeVar("T")


@dataclass(frozen=True)
class MetricInfo:
    """What the rest of the pipeline needs to know about one metric."""

    name: str
    direction: Direction
    low: float | None = None  # the range a goal threshold may take (None: unbounded)
    high: float | None = None
    rate: bool = False  # a share of rows (accuracy): the automatic stop margin applies
    relative_gap: bool = False  # a scale-dependent error: gaps between scores are relative

    def threshold_range(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return f"{self.low:g} or more" if self.low is not None else f"at most {self.high:g}"


METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("accuracy", "max", 0.0, 1.0, rate=True),
    MetricInfo("balanced_accuracy", "max", 0.0, 1.0, rate=True),
    MetricInfo("macro_f1", "max", 0.0, 1.0),
    MetricInfo("auc", "max", 0.0, 1.0),
    MetricInfo("rmse", "min", 0.0, None, relative_gap=True),
    MetricInfo("mae", "min", 0.0, None, relative_gap=True),
    MetricInfo("r2", "max", None, 1.0),
    MetricInfo("log_loss", "min", 0.0, None, relative_gap=True),
)}


def metric_info(name: str) -> MetricInfo:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


@dataclass(frozen=True)
class Objective:
    """A metric with its direction, and (for the goal) the threshold to reach."""

    metric: str
    threshold: float | None = None

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.metric)

    @property
    def direction(self) -> Direction:
        return self.info.direction

    @property
    def comparison(self) -> str:
        """How the goal reads: `>=` for scores, `<=` for errors."""
        return ">=" if self.direction == "max" else "<="

    @property
    def worst(self) -> float:
        """The score of a model that produced nothing usable (NaN outputs)."""
        return -math.inf if self.direction == "max" else math.inf

    def describe(self) -> str:
        return f"{self.metric} {self.comparison} {self.threshold}"

    def better_than(self, a: float, b: float) -> bool:
        """Whether score `a` is strictly better than `b`; NaN is never better."""
        if a is None or math.isnan(a):
            return False
        if b is None or math.isnan(b):
            return True
        return a > b if self.direction == "max" else a < b

    def sort_key(self, value: float, loss: float = math.inf) -> tuple:
        """Ascending order = best first: the score, then the lower loss (the ranking loss); NaN last."""
        missing = value is None or math.isnan(value)
        signed = math.inf if missing else (-value if self.direction == "max" else value)
        return (missing, signed, math.inf if loss is None or math.isnan(loss) else loss)

    def ranked(self, items: Iterable[T], value: Callable[[T], float],
               loss: Callable[[T], float] = lambda _: math.inf) -> list[T]:
        """`items` best first (stable: among exact ties, the earlier first); NaN scores dropped."""
        kept = [item for item in items if value(item) is not None and not math.isnan(value(item))]
        return sorted(kept, key=lambda item: self.sort_key(value(item), loss(item)))

    def best(self, items: Iterable[T], value: Callable[[T], float],
             loss: Callable[[T], float] = lambda _: math.inf) -> T | None:
        ranked = self.ranked(items, value, loss)
        return ranked[0] if ranked else None

    def best_within_noise(self, items: Iterable[T], value: Callable[[T], float], loss: Callable[[T], float],
                          rows: int, positives: int | None = None) -> T | None:
        """Of the items scoring within one standard error of the best on `rows` rows, `positives` of them
        positive (metrics without a standard error: exact ties only), the one with the lowest loss; among
        equal losses, the better score. A rate moves in steps of one row, and an AUC on a few positives in
        steps of one pair: a gap of that size says less than a proper loss does."""
        ranked = self.ranked(items, value, loss)
        if not ranked:
            return None
        top = value(ranked[0])
        noise = self.standard_error(top, rows, positives)
        level = [item for item in ranked if self.lead(top, value(item)) <= noise]
        return min(level, key=lambda item: math.inf if loss(item) is None or math.isnan(loss(item)) else loss(item))

    def standard_error(self, value: float, rows: int, positives: int | None = None) -> float:
        """The standard error of a score `value` measured on `rows` rows, `positives` of them positive:
        a rate's binomial one; a binary AUC's by Hanley and McNeil (1982), which grows as either class
        shrinks (needs `positives`); 0 for the other metrics."""
        if rows <= 0 or value is None or math.isnan(value):
            return 0.0
        if self.info.rate:
            return math.sqrt(value * (1.0 - value) / rows)
        if self.metric == "auc" and positives is not None and 0 < positives < rows:
            negatives = rows - positives
            q1, q2 = value / (2.0 - value), 2.0 * value * value / (1.0 + value)
            variance = (value * (1.0 - value) + (positives - 1) * (q1 - value * value)
                        + (negatives - 1) * (q2 - value * value)) / (positives * negatives)
            return math.sqrt(max(variance, 0.0))
        return 0.0

    def order(self, values: list[float], worst_first: bool = False) -> list[int]:
        """Indices of `values` best first (or worst first), ties in their original order, NaN last."""
        def key(i):
            missing, signed, _ = self.sort_key(values[i])
            return (missing, -signed if worst_first and not missing else signed)
        return sorted(range(len(values)), key=key)

    def best_index(self, values: list[float]) -> int:
        """Index of the best finite value (the last one when none is finite)."""
        indices = self.ranked(range(len(values)), value=lambda i: values[i] if math.isfinite(values[i]) else math.nan)
        return indices[0] if indices else len(values) - 1

    def lead(self, a: float, b: float) -> float:
        """How far `a` is ahead of `b` (positive: better); relative to `b` for scale-dependent errors."""
        ahead = a - b if self.direction == "max" else b - a
        if self.info.relative_gap:
            return ahead / abs(b) if b else 0.0
        return ahead

    def margin(self, value: float) -> float:
        """How far past the threshold `value` is, in the metric's units (positive: met)."""
        return value - self.threshold if self.direction == "max" else self.threshold - value

    def met(self, value: float, margin: float = 0.0) -> bool:
        """Whether `value` reaches the threshold by at least `margin`."""
        if value is None or math.isnan(value):
            return False
        if self.direction == "max":
            return value >= self.threshold + margin
        return value <= self.threshold - margin

    def stop_margin(self, setting: float | str, n_validation: int) -> float:
        """How far past the threshold validation must be before the search calls the goal met.

        `auto`: for rates (accuracy), 1.645 standard errors of a rate at the threshold on
        `n_validation` rows (one-sided 95%); 0 for the other metrics.
        """
        if setting != "auto":
            return float(setting)
        return 1.645 * self.standard_error(self.threshold, n_validation)

    def keras_tuner(self, log_key: str):
        """The same objective for KerasTuner, reading `log_key` from the epoch logs."""
        import keras_tuner as kt

        return kt.Objective(log_key, direction=self.direction)


def paired_loss_gap(losses: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """(how much higher `losses` are than `reference` on average, the standard error of that mean), two
    models' per-row losses on the same rows: pairing takes out what the rows share (hard rows are hard
    for both), so the error is that of the differences. Non-finite losses: an infinite gap."""
    import numpy as np
    from scipy import stats

    losses, reference = np.asarray(losses, dtype="float64"), np.asarray(reference, dtype="float64")
    if losses.shape != reference.shape:
        raise ValueError(f"paired losses need the same rows: {losses.shape} and {reference.shape}")
    gaps = losses - reference
    if not gaps.size or not np.all(np.isfinite(gaps)):
        return math.inf, 0.0
    return float(np.mean(gaps)), float(stats.sem(gaps)) if gaps.size > 1 else 0.0
