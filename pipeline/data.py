"""Data sources and the schema that defines a pipeline's inputs and outputs.

A source yields raw feature values (`x`), encoded targets (`y`) and a :class:`Schema` that
records everything later stages and the predict path need: input kind, shape, dtype, feature
names, the value scaling the model applies, and the output classes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import DataConfig


class DataError(ValueError):
    """The data does not fit what the config declares; the message says which row/column/file."""


@dataclass
class Schema:
    """The input/output definition written by `prepare` and read by every later stage."""

    source: str
    task: str
    input_kind: str  # image | tabular | sequence
    input_shape: list[int]
    features: list[str]
    scaling: dict  # {"kind": "rescale", "scale": s} for images, {"kind": "standardize"} for tables
    output_kind: str  # classes | multilabel | value
    classes: list[str] = field(default_factory=list)  # class names; target names for multilabel
    target: list[str] = field(default_factory=list)
    n_rows: int = 0
    dtype: str = "float32"

    @property
    def n_outputs(self) -> int:
        if self.task == "binary" or self.task == "regression":
            return 1
        return len(self.classes)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> Schema:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray
    schema: Schema


def load_dataset(cfg: DataConfig, task: str) -> Dataset:
    """Load the configured source and encode its targets for `task`."""
    if cfg.source == "digits":
        return _load_digits()
    if cfg.source in ("breast_cancer", "wine", "diabetes"):
        return _load_sklearn_table(cfg.source, task)
    if cfg.source == "npz":
        return _load_npz(cfg, task)
    return _load_csv(cfg, task)


NPZ_LAYOUTS = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, height, width, channels)"}


def _load_npz(cfg: DataConfig, task: str) -> Dataset:
    """Arrays `x` and `y` (and optional `classes` naming integer labels 0..k-1) from a .npz file."""
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            content = {name: arrays[name] for name in arrays.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"data.path: cannot read {path} as .npz: {exc}") from None
    missing = [name for name in ("x", "y") if name not in content]
    if missing:
        raise DataError(f"{path}: array(s) {missing} not found; it holds {sorted(content)}")
    x, y = content["x"], content["y"]
    layout = NPZ_LAYOUTS[cfg.input]
    if x.ndim != layout.count(",") + 1:
        raise DataError(f"{path}: data.input is {cfg.input}, so x must be {layout}; got shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{path}: x has no rows")
    if len(y) != len(x):
        raise DataError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: x must be numeric; got dtype {x.dtype}")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(f"{path}: x has a missing or infinite value in row {row}")
    y_frame = pd.DataFrame(y.reshape(len(y), -1))
    targets = [f"y{i}" for i in range(y_frame.shape[1])] if y_frame.shape[1] > 1 else ["target"]
    y_frame.columns = targets
    encoded, classes, output_kind = _encode_targets(y_frame, targets, task, str(path))
    if "classes" in content and output_kind == "classes":
        names = [str(c) for c in content["classes"]]
        if classes != [str(i) for i in range(len(names))]:
            raise DataError(f"{path}: with a `classes` array, y must hold the labels 0..{len(names) - 1}")
        classes = names
    # uint8 images are 0..255 pixels; anything else is standardised per channel/feature.
    scaling = {"kind": "rescale", "scale": 1.0 / 255.0} if x.dtype == np.uint8 and cfg.input == "image" \
        else {"kind": "standardize"}
    features = [f"x{i}" for i in range(x.shape[-1])] if cfg.input == "tabular" else ["x"]
    schema = Schema(
        source="npz", task=task, input_kind=cfg.input, input_shape=list(x.shape[1:]), features=features,
        scaling=scaling, output_kind=output_kind, classes=classes, target=targets, n_rows=len(x),
    )
    return Dataset(x.astype("float32"), encoded, schema)


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype("float32")[..., np.newaxis]  # (n, 8, 8, 1), values 0..16
    schema = Schema(
        source="digits", task="multiclass", input_kind="image", input_shape=[8, 8, 1],
        features=["pixels"], scaling={"kind": "rescale", "scale": 1.0 / 16.0},
        output_kind="classes", classes=[str(c) for c in bunch.target_names],
        target=["digit"], n_rows=len(x),
    )
    return Dataset(x, bunch.target.astype("int64"), schema)


def _load_sklearn_table(name: str, task: str) -> Dataset:
    import sklearn.datasets as skd

    bunch = getattr(skd, f"load_{name}")()
    x = bunch.data.astype("float32")
    if task == "regression":
        y, classes, output_kind = bunch.target.astype("float32"), [], "value"
    else:
        y, output_kind = bunch.target.astype("int64"), "classes"
        classes = [str(c) for c in bunch.target_names]
    schema = Schema(
        source=name, task=task, input_kind="tabular", input_shape=[x.shape[1]],
        features=[str(f) for f in bunch.feature_names], scaling={"kind": "standardize"},
        output_kind=output_kind, classes=classes, target=["target"], n_rows=len(x),
    )
    return Dataset(x, y, schema)


def _load_csv(cfg: DataConfig, task: str) -> Dataset:
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"data.path: file not found: {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"data.path: cannot read {path} as CSV: {exc}") from None
    if frame.empty:
        raise DataError(f"data.path: {path} has no rows")
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    missing = [c for c in targets + list(cfg.features or []) if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} not found; columns are {list(frame.columns)}")
    features = list(cfg.features or [c for c in frame.columns if c not in targets])
    if not features:
        raise DataError(f"{path}: no feature columns left besides the target(s) {targets}")
    x = features_to_array(frame, features, where=str(path))
    y, classes, output_kind = _encode_targets(frame, targets, task, str(path))
    schema = Schema(
        source="csv", task=task, input_kind="tabular", input_shape=[len(features)], features=features,
        scaling={"kind": "standardize"}, output_kind=output_kind, classes=classes, target=targets,
        n_rows=len(frame),
    )
    return Dataset(x, y, schema)


def features_to_array(frame: pd.DataFrame, features: list[str], where: str) -> np.ndarray:
    """Numeric feature columns as float32, naming the first bad column and row if any."""
    for column in features:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{where}: column '{column}' must be numeric; row {row} holds {frame[column].iloc[row]!r}"
            )
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{where}: column '{column}' has a missing value at row {row}")
    return frame[features].to_numpy(dtype="float32")


def _encode_targets(frame: pd.DataFrame, targets: list[str], task: str, where: str):
    for column in targets:
        if frame[column].isna().any():
            row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
            raise DataError(f"{where}: target column '{column}' has a missing value at row {row}")
    if task == "regression":
        values = pd.to_numeric(frame[targets[0]], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{where}: regression target '{targets[0]}' is not numeric at row {row}")
        return values.to_numpy(dtype="float32"), [], "value"
    if task == "multilabel":
        block = frame[targets]
        if not block.isin([0, 1]).all().all():
            raise DataError(f"{where}: multilabel targets {targets} must hold only 0 and 1")
        return block.to_numpy(dtype="float32"), list(targets), "multilabel"
    labels = frame[targets[0]]
    classes = sorted(labels.unique(), key=lambda v: (str(type(v)), v))
    if task == "binary" and len(classes) != 2:
        raise DataError(f"{where}: goal.task is binary but target '{targets[0]}' has {len(classes)} classes")
    if len(classes) < 2:
        raise DataError(f"{where}: target '{targets[0]}' has a single class; nothing to learn")
    index = {c: i for i, c in enumerate(classes)}
    return labels.map(index).to_numpy(dtype="int64"), [str(c) for c in classes], "classes"
