"""Every file a stage reads or writes, relative to the repo root; dvc.yaml declares the same paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def load_prepared(paths: Paths):
    """The prepared arrays and schema written by the prepare stage."""
    from pipeline.data import Schema

    arrays = np.load(paths.prepared / "data.npz")
    return arrays["x"], arrays["y"], Schema.from_json(paths.prepared / "schema.json")


def load_splits(paths: Paths) -> tuple[dict, object]:
    """{split name: (x, y)} using the persisted split indices, plus the schema."""
    x, y, schema = load_prepared(paths)
    indices = np.load(paths.split / "indices.npz")
    return {name: (x[indices[name]], y[indices[name]]) for name in SPLITS}, schema
