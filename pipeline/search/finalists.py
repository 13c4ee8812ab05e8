"""The last choice on more evidence than one validation split: the finalists cross-validated.

A search picks its best design on the validation split, after trying many: a lead of a row or two
there is as likely luck as skill (digits: a searched CNN right on 270 of 270 validation rows, the
initial design on 269, scored 0.9889 and 0.9972 on test). So when the search's choice is not the
trained initial design, both are trained afresh on k folds of train + validation (shuffled,
stratified for classes), each for the epochs its own run kept, and scored on the fold left out; the
fold scores' means then decide as validation does (within a standard error, the lower ranking loss).
Only where the rows are exchangeable (not a group or time split) and the fits end in time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from pipeline.config import GoalConfig
from pipeline.inputs import take
from pipeline.prepared import Rows
from pipeline.training import score_and_loss


@dataclass(frozen=True)
class FoldScores:
    """One finalist's goal metric and ranking loss on each held-out fold, and the seconds its fits took."""

    values: tuple[float, ...]
    losses: tuple[float, ...]
    seconds: float

    @property
    def value(self) -> float:
        return float(np.mean(self.values))

    @property
    def loss(self) -> float:
        return float(np.mean(self.losses))


@dataclass(frozen=True)
class CrossValidation:
    """Each finalist's fold scores (None: a fit's loss went non-finite), or why none were made."""

    folds: int
    scores: tuple[FoldScores | None, ...] = ()
    stopped: str | None = None  # why the comparison did not finish (then `scores` is empty)
    seconds: float = 0.0


def fold_indices(rows: Rows, folds: int, seed: int, stratify: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training, held-out) row indices of `folds` shuffled folds, stratified by class when
    `stratify` and every class has at least `folds` rows."""
    from sklearn.model_selection import KFold, StratifiedKFold

    index = np.arange(len(rows))
    if stratify and np.unique(rows.y, return_counts=True)[1].min() >= folds:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(index, rows.y))
    return list(KFold(folds, shuffle=True, random_state=seed).split(index))


def cross_validate(finalists: Sequence, fit: Callable[[object, int, Rows], keras.Model | None], rows: Rows,
                   goal: GoalConfig, folds: int, seed: int, deadline: float, first_fold_s: float) -> CrossValidation:
    """Each of `finalists` fitted by `fit(finalist, fold number, training rows)` on each fold and
    scored on the rows it left out, fold by fold, so long as the folds left look like ending by `deadline`
    (time.monotonic()): `first_fold_s` estimates one fold's fits before any is timed."""
    started = time.monotonic()
    pairs = fold_indices(rows, folds, seed, goal.kind.single_label)
    values = [[] for _ in finalists]
    losses = [[] for _ in finalists]
    seconds = [0.0 for _ in finalists]
    failed = [False for _ in finalists]
    for done, (train_idx, held_idx) in enumerate(pairs):
        per_fold = (time.monotonic() - started) / done if done else first_fold_s
        left = deadline - time.monotonic()
        if per_fold * (folds - done) > left:
            return CrossValidation(folds, stopped=f"{folds - done} fold(s) of about {per_fold:.0f} s each would not "
                                                  f"end in the {max(0.0, left):.0f} s left of search.time_budget_s",
                                   seconds=round(time.monotonic() - started, 2))
        train, held = Rows(take(rows.x, train_idx), rows.y[train_idx]), Rows(take(rows.x, held_idx), rows.y[held_idx])
        for number, finalist in enumerate(finalists):
            if failed[number]:
                continue
            clock = time.monotonic()
            model = fit(finalist, done, train)
            seconds[number] += time.monotonic() - clock
            if model is None:
                failed[number] = True
                continue
            value, loss = score_and_loss(model, goal, held)
            if not math.isfinite(value):
                failed[number] = True
                continue
            values[number].append(value)
            losses[number].append(loss)
    scores = tuple(None if failed[n] else FoldScores(tuple(values[n]), tuple(losses[n]), round(seconds[n], 2))
                   for n in range(len(finalists)))
    return CrossValidation(folds, scores, seconds=round(time.monotonic() - started, 2))
