"""Data sources and the schema that defines a pipeline's inputs and outputs.

A source yields raw feature values (`x`: an array, a typed table, or image files read lazily),
encoded targets (`y`) and a :class:`Schema` that records everything later stages and the
predict path need: input kind, shape, dtype, feature names and column kinds, the value scaling
the model applies, how images are read, and the output classes. Optional per-row `groups`,
`time` and `origin` (0: main source, 1: validation source, 2: test source) drive the split.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import features as columns_lib
from pipeline.config import DataConfig
from pipeline.errors import DataError
from pipeline.images import ImageError, ImageFiles, ImageSettings, check_images, class_folders

__all__ = ["DataError", "Dataset", "Schema", "load_dataset"]
ORIGINS = {"validation_path": 1, "test_path": 2}
IMAGE_SCALING = {  # pixels 0..255 -> 0..1 (unit) or -1..1 (symmetric), by the model's first layer
    "unit": {"kind": "rescale", "scale": 1.0 / 255.0},
    "symmetric": {"kind": "rescale", "scale": 1.0 / 127.5, "offset": -1.0},
}


@dataclass
class Schema:
    """The input/output definition written by `prepare` (and, fitted, by `split`); read by every later stage."""

    source: str
    task: str
    input_kind: str  # image | tabular | sequence | text
    input_shape: list[int]
    features: list[str]
    scaling: dict  # {"kind": "rescale", "scale": s[, "offset": o]} | {"kind": "standardize"} | {"kind": "none"}
    output_kind: str  # classes | multilabel | value
    classes: list[str] = field(default_factory=list)  # class names; target names for multilabel
    target: list[str] = field(default_factory=list)
    n_rows: int = 0
    dtype: str = "float32"
    # Typed tables: one spec per feature column (kind, missing strategy, model input name; after
    # the split also fill values and vocabularies fitted on the training rows).
    columns: list[dict] = field(default_factory=list)
    image: dict = field(default_factory=dict)  # image files: ImageSettings; the predict path reads them
    categorical_encoding: str = "auto"
    text_embed_dim: int = 32
    inputs: list[dict] = field(default_factory=list)  # the model's inputs (name, shape, dtype), set by split

    @property
    def n_outputs(self) -> int:
        if self.task == "binary" or self.task == "regression":
            return 1
        return len(self.classes)

    @property
    def reads_files(self) -> bool:
        return bool(self.image)

    def image_settings(self) -> ImageSettings:
        return ImageSettings(**self.image)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> Schema:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Dataset:
    x: object  # np.ndarray | pd.DataFrame (typed table) | ImageFiles
    y: np.ndarray
    schema: Schema
    groups: np.ndarray | None = None
    time: np.ndarray | None = None
    origin: np.ndarray | None = None


def load_dataset(cfg: DataConfig, task: str) -> Dataset:
    """Load the configured source (and any separate validation/test sources) and encode targets for `task`."""
    if cfg.source == "digits":
        return _load_digits()
    if cfg.source in ("breast_cancer", "wine", "diabetes"):
        return _load_sklearn_table(cfg.source, task)
    main = _load_file_source(cfg, task, cfg.path)
    parts = [main]
    for key, origin in ORIGINS.items():
        if getattr(cfg, key):
            extra = _load_file_source(cfg, task, getattr(cfg, key), like=main.schema)
            extra.origin = np.full(len(extra.y), origin, dtype="int8")
            parts.append(extra)
    if len(parts) == 1:
        return main
    main.origin = np.zeros(len(main.y), dtype="int8")
    return _concatenate(parts)


def _load_file_source(cfg: DataConfig, task: str, path: str, like: Schema | None = None) -> Dataset:
    if cfg.source == "npz":
        return _load_npz(cfg, task, Path(path), like)
    if cfg.source == "images":
        return _load_image_folder(cfg, task, Path(path), like)
    return _load_table(cfg, task, Path(path), like)


def _concatenate(parts: list[Dataset]) -> Dataset:
    first = parts[0]
    if isinstance(first.x, pd.DataFrame):
        x = pd.concat([p.x for p in parts], ignore_index=True)
    elif isinstance(first.x, ImageFiles):
        x = ImageFiles(tuple(f for p in parts for f in p.x.files), first.x.settings)
    else:
        x = np.concatenate([p.x for p in parts])
    def joined(name):
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)
    schema = first.schema
    schema.n_rows = sum(len(p.y) for p in parts)
    return Dataset(x, np.concatenate([p.y for p in parts]), schema, joined("groups"), joined("time"), joined("origin"))


NPZ_LAYOUTS = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, height, width, channels)"}


def _load_npz(cfg: DataConfig, task: str, path: Path, like: Schema | None = None) -> Dataset:
    """Arrays `x` and `y` (and optional `classes` naming integer labels 0..k-1) from a .npz file."""
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
    if like is not None and list(x.shape[1:]) != like.input_shape:
        raise DataError(f"{path}: x rows have shape {x.shape[1:]}; the main source's are {tuple(like.input_shape)}")
    named = "classes" in content and task in ("binary", "multiclass")
    if named and like is not None:
        # labels 0..k-1 named by the `classes` array: they must name the main source's classes
        y_frame[targets[0]] = np.asarray(content["classes"]).astype(str)[y_frame[targets[0]].astype(int)]
        return _npz_dataset(cfg, task, x, *_encode_targets(y_frame, targets, task, str(path), like), targets)
    encoded, classes, output_kind = _encode_targets(y_frame, targets, task, str(path), like)
    if named and like is None:
        names = [str(c) for c in content["classes"]]
        if classes != [str(i) for i in range(len(names))]:
            raise DataError(f"{path}: with a `classes` array, y must hold the labels 0..{len(names) - 1}")
        classes = names
    return _npz_dataset(cfg, task, x, encoded, classes, output_kind, targets)


def _npz_dataset(cfg: DataConfig, task: str, x: np.ndarray, encoded, classes, output_kind, targets) -> Dataset:
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


def read_table(path: Path, where: str = "data.path") -> pd.DataFrame:
    """A CSV or Parquet file (by its suffix) as a DataFrame, with a clear error when unreadable."""
    if not path.is_file():
        raise DataError(f"{where}: file not found: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{where}: cannot read {path} as {'Parquet' if 'parq' in path.suffix else 'CSV'}: "
                        f"{str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"{where}: {path} has no rows")
    return frame


def _load_table(cfg: DataConfig, task: str, path: Path, like: Schema | None = None) -> Dataset:
    """A CSV/Parquet table: typed feature columns, or a sequence/window/image-path view of it."""
    frame = read_table(path)
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    special = [c for c in (cfg.time_column, cfg.group_column) if c]
    missing = [c for c in targets + list(cfg.features or []) + special if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: column(s) {missing} not found; columns are {list(frame.columns)}")
    if cfg.window is not None:
        default_features = [c for c in frame.columns if c not in special]  # past targets help forecast
    else:
        default_features = [c for c in frame.columns if c not in targets + special]
    features = list(cfg.features or default_features)
    if not features:
        raise DataError(f"{path}: no feature columns left besides the target(s) {targets}")
    if cfg.window is not None:
        return _windows(cfg, frame, features, targets[0], task, path)
    groups = frame[cfg.group_column].astype(str).to_numpy(dtype=str) if cfg.group_column else None
    time = _time_values(frame, cfg.time_column, path) if cfg.time_column else None
    y, classes, output_kind = _encode_targets(frame, targets, task, str(path), like)
    common = dict(source=cfg.source, task=task, output_kind=output_kind, classes=classes, target=targets,
                  n_rows=len(frame))
    where = str(path)
    if cfg.input_kind == "sequence":
        x = _wide_sequences(frame, features, cfg.steps, where)
        schema = Schema(input_kind="sequence", input_shape=list(x.shape[1:]), features=features,
                        scaling={"kind": "standardize"}, **common)
        return Dataset(x, y, schema, groups, time)
    declared = dict(cfg.columns)
    if like is not None:
        declared.update({c["name"]: c["kind"] for c in like.columns})
    specs = columns_lib.column_specs(frame, features, declared, cfg.missing, where, cfg.text.model_dump())
    kinds = {s["name"]: s["kind"] for s in specs}
    images = [name for name, kind in kinds.items() if kind == "image"]
    if cfg.input_kind == "image" or images:
        if len(features) != 1 or not images:
            raise DataError(f"{path}: image input reads one image-path column; features are {kinds} "
                            "(mixing images with other columns is not supported)")
        files = [image_path(path, value, row) for row, value in enumerate(frame[images[0]])]
        return _image_dataset(cfg, files, y, common, groups, time, like)
    if cfg.input_kind == "text":
        texts = [name for name, kind in kinds.items() if kind == "text"]
        if len(features) != 1 or not texts:
            raise DataError(f"{path}: data.input is text, which reads one text column; features are {kinds} "
                            "(set data.features to the text column, or use tabular input)")
    table = _typed(frame[features], specs)
    if cfg.input_kind == "text":
        schema = Schema(input_kind="text", input_shape=[cfg.text.sequence_length], features=features,
                        scaling={"kind": "none"}, columns=specs, text_embed_dim=cfg.text.embed_dim, **common)
    else:
        schema = Schema(input_kind="tabular", input_shape=[len(features)], features=features,
                        scaling={"kind": "standardize"}, columns=specs, text_embed_dim=cfg.text.embed_dim,
                        categorical_encoding=cfg.categorical_encoding, **common)
    return Dataset(table, y, schema, groups, time)


def _typed(frame: pd.DataFrame, specs: list[dict]) -> pd.DataFrame:
    """Each column in one storable type: floats (NaN), or strings (None where missing)."""
    typed = {}
    for spec in specs:
        values = frame[spec["name"]]
        if spec["kind"] == "numeric":
            typed[spec["name"]] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif spec["kind"] == "categorical":
            typed[spec["name"]] = pd.Series(columns_lib.category_strings(values), dtype="object")
        else:
            typed[spec["name"]] = pd.Series([None if pd.isna(v) else str(v) for v in values], dtype="object")
    return pd.DataFrame(typed)


def image_path(table: Path, value, row: int) -> str:
    """An image-path cell as a file path: relative paths are relative to the table's folder."""
    if pd.isna(value):
        raise DataError(f"{table}: image path missing at row {row}")
    candidate = Path(str(value))
    return str(candidate if candidate.is_absolute() else table.parent / candidate)


def _time_values(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Sortable time stamps: numbers as they are, dates as nanoseconds."""
    values = frame[column]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{path}: time column '{column}' has a missing value at row {row}")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64")
    try:
        return pd.to_datetime(values).astype("int64").to_numpy(dtype="float64")
    except (ValueError, TypeError):
        raise DataError(f"{path}: time column '{column}' is neither numbers nor dates "
                        f"(row 0 holds {values.iloc[0]!r})") from None


def _numeric_block(frame: pd.DataFrame, features: list[str], where: str) -> np.ndarray:
    """Numeric feature columns as float32 with no gaps, naming the first bad column and row."""
    columns_lib.check_values(frame, [{"name": c, "kind": "numeric", "missing": "mean"} for c in features], where)
    for column in features:
        gaps = frame[column].isna()
        if gaps.any():
            row = int(np.flatnonzero(gaps.to_numpy())[0])
            raise DataError(f"{where}: column '{column}' has a missing value at row {row} "
                            "(sequences need every step; fill the gaps first)")
    return frame[features].apply(pd.to_numeric).to_numpy(dtype="float32")


def _wide_sequences(frame: pd.DataFrame, features: list[str], steps: int | None, where: str) -> np.ndarray:
    """(n, steps, k) from a wide table whose columns run step by step (t0 features, t1 features, ...),
    or from one array column (Parquet lists, or strings like "0.1 0.5 0.2")."""
    if steps is None:
        if len(features) != 1:
            raise DataError(f"{where}: sequence input from a table needs data.steps (a wide table with "
                            f"{len(features)} columns), one array column, or data.window")
        return _array_column(frame[features[0]], where)
    if len(features) % steps:
        raise DataError(f"{where}: {len(features)} feature columns do not split into data.steps={steps} steps")
    block = _numeric_block(frame, features, where)
    return block.reshape(len(frame), steps, len(features) // steps)


def _array_column(values: pd.Series, where: str) -> np.ndarray:
    """One array per row, all of one length: (n, steps, 1) for numbers, (n, steps, k) for rows of k."""
    arrays = []
    for row, value in enumerate(values):
        if isinstance(value, str):
            value = [v for v in re.split(r"[\s,;\[\]]+", value) if v]
        try:
            array = np.asarray(value if value is not None else [], dtype="float32")
            if array.ndim == 1 and isinstance(value, np.ndarray) and value.dtype == object:
                array = np.stack([np.asarray(v, dtype="float32") for v in value])
        except (TypeError, ValueError):
            raise DataError(f"{where}: column '{values.name}' row {row} is not an array of numbers: "
                            f"{str(value)[:60]!r}") from None
        if array.size == 0 or not np.isfinite(array).all():
            raise DataError(f"{where}: column '{values.name}' row {row} is empty or has a missing value")
        if arrays and array.shape != arrays[0].shape:
            raise DataError(f"{where}: column '{values.name}' row {row} has shape {array.shape}; row 0 has "
                            f"{arrays[0].shape} (sequences must have one length)")
        arrays.append(array)
    stacked = np.stack(arrays)
    return stacked[..., np.newaxis] if stacked.ndim == 2 else stacked


def _windows(cfg: DataConfig, frame: pd.DataFrame, features: list[str], target: str, task: str,
             path: Path) -> Dataset:
    """Sliding windows over a time-ordered table: `length` rows of features -> target `horizon` rows later."""
    where = str(path)
    time = _time_values(frame, cfg.time_column, path)
    order = np.argsort(time, kind="stable")
    frame, time = frame.iloc[order].reset_index(drop=True), time[order]
    block = _numeric_block(frame, features, where)
    values = _numeric_block(frame, [target], where)[:, 0]
    length, horizon = cfg.window.length, cfg.window.horizon
    count = len(frame) - length - horizon + 1
    if count < 1:
        raise DataError(f"{where}: {len(frame)} rows are too few for windows of {length} rows "
                        f"predicting {horizon} ahead")
    starts = np.arange(count)
    x = np.stack([block[i:i + length] for i in starts])
    y = values[starts + length + horizon - 1].astype("float32")
    schema = Schema(source=cfg.source, task=task, input_kind="sequence", input_shape=[length, len(features)],
                    features=features, scaling={"kind": "standardize"}, output_kind="value", target=[target],
                    n_rows=count)
    return Dataset(x, y, schema, time=time[starts + length + horizon - 1])


def _load_image_folder(cfg: DataConfig, task: str, root: Path, like: Schema | None = None) -> Dataset:
    """One sub-folder per class, or a flat folder with a labels CSV (file,label)."""
    if cfg.labels and like is None:
        labels_path = Path(cfg.labels)
        table = read_table(labels_path, "data.labels")
        label_column = cfg.target if isinstance(cfg.target, str) else "label"
        absent = [c for c in ("file", label_column) if c not in table.columns]
        if absent:
            raise DataError(f"data.labels: {labels_path} lacks column(s) {absent}; it needs file and {label_column}")
        files = [str(root / str(f)) for f in table["file"]]
        labels = table[label_column]
    else:
        found, names = class_folders(root)
        files, labels = [str(f) for f in found], pd.Series(names)
    label_frame = pd.DataFrame({"label": labels.to_numpy()})
    y, classes, output_kind = _encode_targets(label_frame, ["label"], task, str(root), like)
    common = dict(source="images", task=task, output_kind=output_kind, classes=classes, target=["label"],
                  n_rows=len(files))
    return _image_dataset(cfg, files, y, common, None, None, like)


def _image_dataset(cfg: DataConfig, files: list[str], y: np.ndarray, common: dict, groups, time,
                   like: Schema | None) -> Dataset:
    """Check every image once (one at a time) and settle the size every image is brought to."""
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ImageError(f"{missing[0]}: image file not found ({len(missing)} missing in all)")
    sizes = check_images([Path(f) for f in files])
    if like is not None:
        settings = like.image_settings()
    else:
        image = cfg.image
        if image.size is not None:
            height, width = image.size
        elif len(set(sizes)) == 1:
            height, width = sizes[0]
        else:
            first = files[0]
            other = next(i for i, s in enumerate(sizes) if s != sizes[0])
            raise ImageError(f"images differ in size ({first}: {sizes[0][0]}x{sizes[0][1]}, {files[other]}: "
                             f"{sizes[other][0]}x{sizes[other][1]}); set data.image.size: [height, width] "
                             "to resize or pad them")
        settings = ImageSettings(height, width, image.color, image.mode, image.fill)
    if settings.mode == "none":
        wrong = next((i for i, s in enumerate(sizes) if s != (settings.height, settings.width)), None)
        if wrong is not None:
            raise ImageError(f"{files[wrong]}: size {sizes[wrong][0]}x{sizes[wrong][1]} differs from "
                             f"{settings.height}x{settings.width} and data.image.mode is none")
    schema = Schema(input_kind="image", input_shape=settings.shape, features=["image"],
                    scaling=IMAGE_SCALING[cfg.image.scaling], image=settings.to_dict(), **common)
    return Dataset(ImageFiles(tuple(files), settings), y, schema, groups, time)


def _encode_targets(frame: pd.DataFrame, targets: list[str], task: str, where: str, like: Schema | None = None):
    """Targets as model outputs: class ids (classes sorted, or the main source's), 0/1 columns, or values."""
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
    if like is not None:
        index = {c: i for i, c in enumerate(like.classes)}
        text = labels.astype(str)
        unknown = ~text.isin(list(index))
        if unknown.any():
            row = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(f"{where}: target '{targets[0]}' holds {labels.iloc[row]!r} at row {row}, a class the "
                            f"main data does not have ({', '.join(like.classes)})")
        return text.map(index).to_numpy(dtype="int64"), list(like.classes), "classes"
    classes = sorted(labels.unique(), key=lambda v: (str(type(v)), v))
    if task == "binary" and len(classes) != 2:
        raise DataError(f"{where}: goal.task is binary but target '{targets[0]}' has {len(classes)} classes")
    if len(classes) < 2:
        raise DataError(f"{where}: target '{targets[0]}' has a single class; nothing to learn")
    index = {c: i for i, c in enumerate(classes)}
    return labels.map(index).to_numpy(dtype="int64"), [str(c) for c in classes], "classes"
