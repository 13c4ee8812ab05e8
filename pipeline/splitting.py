"""Assigning rows to train/validation/test (the split kinds live in pipeline/config/splits.py), and
finding validation/test rows that exactly duplicate a training row."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from pipeline.config.splits import SplitKeys, SplitSettings
from pipeline.errors import DataError
from pipeline.images import ImageFiles

ORIGIN_SPLIT = {1: "validation", 2: "test"}


def split_indices(y: np.ndarray, kind: SplitSettings, key=None, origin=None,
                  classes: list[str] | None = None) -> dict:
    """Sorted row indices per split. Rows from a separate source keep their split; `kind` divides the rest."""
    everything = np.arange(len(y))
    fixed = {name: everything[origin == code] if origin is not None else everything[:0]
             for code, name in ORIGIN_SPLIT.items()}
    pool = everything[origin == 0] if origin is not None else everything
    test_share = 0.0 if len(fixed["test"]) else kind.test
    val_share = 0.0 if len(fixed["validation"]) else kind.validation
    parts = kind.assign(pool, y, val_share, test_share, SplitKeys(key, classes))
    parts = {name: np.sort(np.concatenate([parts.get(name, pool[:0]), fixed.get(name, pool[:0])])) for name in
             ("train", "validation", "test")}
    empty = [name for name, rows in parts.items() if len(rows) == 0]
    if empty:
        raise DataError(f"split: the {', '.join(empty)} split would be empty ({len(y)} rows, "
                        f"validation={kind.validation}, test={kind.test}); more data or larger fractions are needed")
    return parts


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
