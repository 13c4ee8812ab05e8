"""Every file a stage reads or writes, relative to the repo root; dvc.yaml declares the same paths."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    # stage outputs, in stage order
    @property
    def goal(self) -> Path:
        return self.artifacts / "goal.json"

    @property
    def prepared(self) -> Path:
        return self.artifacts / "prepared"

    @property
    def split(self) -> Path:
        return self.artifacts / "split"

    @property
    def design(self) -> Path:
        return self.artifacts / "design"

    @property
    def train(self) -> Path:
        return self.artifacts / "train"

    @property
    def redesign(self) -> Path:
        return self.artifacts / "redesign"

    @property
    def search_state(self) -> Path:
        """KerasTuner projects and full-data runs, kept across runs so a search can resume."""
        return self.root / "state" / "redesign"

    @property
    def validate(self) -> Path:
        return self.artifacts / "validate"

    @property
    def export(self) -> Path:
        return self.artifacts / "export"

    @property
    def reports(self) -> Path:
        return self.root / "reports"


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


@contextmanager
def replaced_dir(target: Path):
    """A fresh temporary folder that replaces `target` only when the block succeeds.

    A stage that fails half-way leaves no partial output behind for DVC to cache as valid.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def save_prepared(dataset, directory: Path) -> None:
    """Raw features (array, Parquet table or image file list), targets, split keys and the schema."""
    from pipeline.images import ImageFiles

    arrays = {"y": dataset.y}
    for name in ("groups", "time", "origin"):
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


def load_prepared(paths: Paths):
    """The :class:`~pipeline.data.Dataset` the prepare stage wrote (features raw, not encoded)."""
    from pipeline.data import Dataset, Schema
    from pipeline.images import ImageFiles

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
    return Dataset(x, content["y"], schema, content.get("groups"), content.get("time"), content.get("origin"))


def model_inputs(x, schema):
    """Raw features as the model reads them: typed tables encoded with the schema's fitted columns."""
    if isinstance(x, pd.DataFrame):
        from pipeline.features import encode

        return encode(x, schema.columns, schema.input_kind)
    return x


def _load_rows(paths: Paths, names) -> tuple[dict, object]:
    """{name: (raw features, model inputs, y)} for the named splits, from one read, plus the fitted schema."""
    from pipeline.data import Schema
    from pipeline.inputs import take

    dataset = load_prepared(paths)
    schema = Schema.from_json(paths.split / "schema.json")
    indices = np.load(paths.split / "indices.npz")
    parts = {}
    for name in names:
        raw = take(dataset.x, indices[name])
        parts[name] = (raw, model_inputs(raw, schema), dataset.y[indices[name]])
    return parts, schema


def load_splits(paths: Paths) -> tuple[dict, object]:
    """{split name: (model inputs, y)} using the persisted split indices, plus the fitted schema."""
    parts, schema = _load_rows(paths, SPLITS)
    return {name: (x, y) for name, (_, x, y) in parts.items()}, schema


def load_test_split(paths: Paths):
    """(raw features, as a user would pass them to predict; model inputs; y; schema) of the test split."""
    parts, schema = _load_rows(paths, ("test",))
    return (*parts["test"], schema)
