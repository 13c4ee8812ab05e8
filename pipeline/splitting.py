"""Assigning rows to train/validation/test: random, stratified, by group, by time, or by source."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from pipeline.errors import DataError
from pipeline.images import ImageFiles

ORIGIN_SPLIT = {1: "validation", 2: "test"}


def resolved_method(method: str, task: str, windows: bool = False) -> str:
    """`auto` made concrete: time for forecasting windows, stratified for classes, else random."""
    if method != "auto":
        return method
    if windows:
        return "time"
    return "stratified" if task in ("binary", "multiclass") else "random"


def split_indices(y: np.ndarray, method: str, validation: float, test: float, seed: int, groups=None, time=None,
                  origin=None, classes: list[str] | None = None) -> dict:
    """Sorted row indices per split. Rows from a separate source keep their split; the rest are divided."""
    everything = np.arange(len(y))
    fixed = {name: everything[origin == code] if origin is not None else everything[:0]
             for code, name in ORIGIN_SPLIT.items()}
    pool = everything[origin == 0] if origin is not None else everything
    test_share = 0.0 if len(fixed["test"]) else test
    val_share = 0.0 if len(fixed["validation"]) else validation
    if method == "time":
        parts = _by_time(pool, time, val_share, test_share)
    else:
        parts = _shuffled(pool, y, method, val_share, test_share, seed, groups, classes)
    parts = {name: np.sort(np.concatenate([parts.get(name, pool[:0]), fixed.get(name, pool[:0])])) for name in
             ("train", "validation", "test")}
    empty = [name for name, rows in parts.items() if len(rows) == 0]
    if empty:
        raise DataError(f"split: the {', '.join(empty)} split would be empty ({len(y)} rows, "
                        f"validation={validation}, test={test}); more data or larger fractions are needed")
    return parts


def _by_time(pool: np.ndarray, time: np.ndarray, val_share: float, test_share: float) -> dict:
    """Oldest rows train, then validation, newest test: nothing is predicted from its future."""
    ordered = pool[np.argsort(time[pool], kind="stable")]
    n_test, n_val = round(test_share * len(ordered)), round(val_share * len(ordered))
    n_train = len(ordered) - n_test - n_val
    return {"train": ordered[:n_train], "validation": ordered[n_train:n_train + n_val],
            "test": ordered[n_train + n_val:]}


def _shuffled(pool, y, method, val_share, test_share, seed, groups, classes) -> dict:
    parts = {"train": pool}
    for name, share in (("test", test_share), ("validation", val_share)):
        if share <= 0:
            continue
        rest = parts["train"]
        # the validation share is of all rows, so of what is left after the test rows are out
        fraction = share / (1.0 - test_share) if name == "validation" else share
        parts["train"], parts[name] = _divide(rest, y, method, fraction, seed, groups, classes)
    return parts


def _divide(rows, y, method, fraction, seed, groups, classes):
    if method == "group":
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        keep, out = next(splitter.split(rows, groups=groups[rows]))
        if len(keep) == 0 or len(out) == 0:
            raise DataError(f"split: {len(np.unique(groups[rows]))} groups cannot be divided "
                            f"{1 - fraction:.0%}/{fraction:.0%} with whole groups on each side")
        return rows[keep], rows[out]
    stratify = y[rows] if method == "stratified" else None
    if stratify is not None:
        labels, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 2:
            name = classes[int(labels[counts.argmin()])] if classes else labels[counts.argmin()]
            raise DataError(f"split: class {name!r} has {counts.min()} row(s); a stratified split needs at least 2 "
                            "per class (add rows, drop the class, or set split.method=random)")
    try:
        return train_test_split(rows, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"split: cannot make a {method} split of {len(rows)} rows into "
                        f"{1 - fraction:.0%}/{fraction:.0%}: {exc}") from None


def row_fingerprints(x) -> np.ndarray:
    """A hash per row (per file's bytes for images), to find exact duplicates across splits."""
    if isinstance(x, pd.DataFrame):
        return pd.util.hash_pandas_object(x, index=False).to_numpy()
    if isinstance(x, ImageFiles):
        def digest(path):
            md5 = hashlib.md5()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    md5.update(chunk)
            return md5.hexdigest()
        return np.array([digest(f) for f in x.files])
    flat = np.ascontiguousarray(np.asarray(x).reshape(len(x), -1))
    return np.array([hashlib.md5(row.tobytes()).hexdigest() for row in flat])


def duplicates_of_train(fingerprints: np.ndarray, indices: dict) -> dict:
    """How many validation and test rows are exact copies of some training row."""
    train = set(fingerprints[indices["train"]].tolist())
    return {name: int(sum(f in train for f in fingerprints[indices[name]].tolist())) for name in ("validation", "test")}
