"""The prepared dataset on disk, and its splits as the model reads them.

`prepare` saves raw features (an array, a Parquet table or an image file list), targets, split
keys and the schema; later stages load them back, select each split's rows with the saved
indices, and encode typed tables with the schema's column encodings fitted on the training rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import Dataset
from pipeline.images import ImageFiles
from pipeline.paths import Paths
from pipeline.schema import Schema

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Rows:
    """Some rows as the model reads them (`x`), their targets, and (held-out rows) the raw features."""

    x: object  # array | dict of arrays (one per model input) | ImageFiles
    y: np.ndarray
    raw: object = None  # as a user would give them to predict: table rows, image files, arrays

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    train: Rows
    validation: Rows
    test: Rows

    def train_and_validation(self) -> Rows:
        """The training rows followed by the validation rows: what a chosen design is refitted on."""
        from pipeline.inputs import concat

        return Rows(concat(self.train.x, self.validation.x), np.concatenate([self.train.y, self.validation.y]))


def subsample(rows: Rows, fraction: float, seed: int, stratify: bool) -> Rows:
    """A seeded (stratified when possible) fraction of some rows."""
    from sklearn.model_selection import train_test_split

    from pipeline.inputs import take

    if fraction >= 1.0:
        return rows
    labels = rows.y if stratify else None
    try:
        idx, _ = train_test_split(np.arange(len(rows)), train_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # too few rows per class for a stratified subset
        idx, _ = train_test_split(np.arange(len(rows)), train_size=fraction, random_state=seed)
    idx = np.sort(idx)
    return Rows(take(rows.x, idx), rows.y[idx])


def save_prepared(dataset: Dataset, directory: Path) -> None:
    """Raw features (array, Parquet table or image file list), targets, split keys and the schema."""
    arrays = {"y": dataset.y}
    for name in ("key", "origin"):
        if getattr(dataset, name) is not None:
            arrays[name] = getattr(dataset, name)
    if isinstance(dataset.x, pd.DataFrame):
        dataset.x.to_parquet(directory / "table.parquet", index=False)
    elif isinstance(dataset.x, ImageFiles):
        pd.DataFrame({"file": list(dataset.x.files)}).to_csv(directory / "images.csv", index=False)
    else:
        arrays["x"] = dataset.x
    np.savez_compressed(directory / "data.npz", **arrays)
    dataset.schema.to_json(directory / "schema.json")


def load_prepared(paths: Paths) -> Dataset:
    """The dataset the prepare stage wrote (features raw, not encoded)."""
    directory = paths.prepared
    schema = Schema.from_json(directory / "schema.json")
    with np.load(directory / "data.npz", allow_pickle=False) as arrays:
        content = {name: arrays[name] for name in arrays.files}
    if (directory / "table.parquet").is_file():
        x = pd.read_parquet(directory / "table.parquet")
    elif (directory / "images.csv").is_file():
        x = ImageFiles(tuple(pd.read_csv(directory / "images.csv")["file"].astype(str)), schema.image_settings())
    else:
        x = content["x"]
    return Dataset(x, content["y"], schema, content.get("key"), content.get("origin"))


def model_inputs(x, schema: Schema):
    """Raw features as the model reads them: typed tables encoded with the schema's fitted columns."""
    if isinstance(x, pd.DataFrame):
        from pipeline.features import encode

        return encode(x, schema.columns, schema.input_kind)
    return x


def _load_rows(paths: Paths, names) -> tuple[dict[str, Rows], Schema]:
    """{name: Rows} for the named splits, from one read, plus the fitted schema."""
    from pipeline.inputs import take

    dataset = load_prepared(paths)
    schema = Schema.from_json(paths.split / "schema.json")
    indices = np.load(paths.split / "indices.npz")
    parts = {}
    for name in names:
        raw = take(dataset.x, indices[name])
        parts[name] = Rows(model_inputs(raw, schema), dataset.y[indices[name]], raw)
    return parts, schema


def load_splits(paths: Paths) -> tuple[Splits, Schema]:
    """Every split as the model reads it (using the persisted split indices), plus the fitted schema."""
    parts, schema = _load_rows(paths, SPLITS)
    return Splits(**parts), schema


def load_test_split(paths: Paths) -> tuple[Rows, Schema]:
    """The test rows (with their raw features, as a user would pass them to predict) and the schema."""
    parts, schema = _load_rows(paths, ("test",))
    return parts["test"], schema
