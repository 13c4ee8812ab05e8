"""Data sources: each yields raw features, encoded targets and the :class:`~pipeline.schema.Schema`.

A source yields raw feature values (`x`: an array, a typed table, or image files read lazily),
targets encoded by the task (`y`) and the schema: input kind, shape, feature names and column
kinds, the value scaling the model applies, how images are read, and the output classes.
Optional per-row `key` (the values a group or time split divides by) and `origin` (0: main
source, 1: validation source, 2: test source) drive the split.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import features as columns_lib
from pipeline.config import DataConfig, SplitSettings
from pipeline.errors import DataError
from pipeline.images import ImageError, ImageFiles, ImageSettings, check_images, class_folders
from pipeline.schema import NO_SCALING, RESCALE_SYMMETRIC, RESCALE_UNIT, STANDARDIZE, ColumnSpec, Scaling, Schema
from pipeline.tasks import Task, task_named

__all__ = ["DataError", "Dataset", "Schema", "load_dataset"]
ORIGINS = {"validation_path": 1, "test_path": 2}
# pixels 0..255 -> 0..1 (unit) or -1..1 (symmetric), by the model's first layer
IMAGE_SCALING = {"unit": RESCALE_UNIT, "symmetric": RESCALE_SYMMETRIC}


@dataclass
class Dataset:
    x: object  # np.ndarray | pd.DataFrame (typed table) | ImageFiles
    y: np.ndarray
    schema: Schema
    key: np.ndarray | None = None  # per row: the group or time stamp a group/time split divides by
    origin: np.ndarray | None = None


@dataclass(frozen=True)
class Source:
    """What a loader needs: the data section, the task, and the split (for the column it keys on)."""

    data: DataConfig
    task: Task
    split: SplitSettings | None = None

    @property
    def key_column(self) -> str | None:
        return self.split.key_column(self.data) if self.split is not None else None


def load_dataset(cfg: DataConfig, task: Task | str, split: SplitSettings | None = None) -> Dataset:
    """Load the configured source (and any separate validation/test sources) and encode targets.

    `split`: the split kind, whose key column (group, time stamps) is set aside as the rows' key
    instead of becoming a feature.
    """
    source = Source(cfg, task_named(task) if isinstance(task, str) else task, split)
    if cfg.source == "digits":
        return _load_digits(source.task)
    if cfg.source in ("breast_cancer", "wine", "diabetes"):
        return _load_sklearn_table(cfg.source, source.task)
    main = _load_file_source(source, cfg.path)
    parts = [main]
    for key, origin in ORIGINS.items():
        if getattr(cfg, key):
            extra = _load_file_source(source, getattr(cfg, key), like=main.schema)
            extra.origin = np.full(len(extra.y), origin, dtype="int8")
            parts.append(extra)
    if len(parts) == 1:
        return main
    main.origin = np.zeros(len(main.y), dtype="int8")
    return _concatenate(parts)


def _load_file_source(source: Source, path: str, like: Schema | None = None) -> Dataset:
    if source.data.source == "npz":
        return _load_npz(source, Path(path), like)
    if source.data.source == "images":
        return _load_image_folder(source, Path(path), like)
    return _load_table(source, Path(path), like)


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
    return Dataset(x, np.concatenate([p.y for p in parts]), schema, joined("key"), joined("origin"))


def _known_classes(like: Schema | None) -> list[str] | None:
    return list(like.classes) if like is not None and like.task.single_label else None


NPZ_LAYOUTS = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, height, width, channels)"}


def _load_npz(source: Source, path: Path, like: Schema | None = None) -> Dataset:
    """Arrays `x` and `y` (and optional `classes` naming integer labels 0..k-1) from a .npz file."""
    cfg, task = source.data, source.task
    content = read_arrays(path, "data.path")
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
    named = "classes" in content and task.single_label
    if named and like is not None:
        # labels 0..k-1 named by the `classes` array: they must name the main source's classes
        y_frame[targets[0]] = np.asarray(content["classes"]).astype(str)[y_frame[targets[0]].astype(int)]
    encoded, classes = task.encode_targets(y_frame, targets, str(path), _known_classes(like))
    if named and like is None:
        names = [str(c) for c in content["classes"]]
        if classes != [str(i) for i in range(len(names))]:
            raise DataError(f"{path}: with a `classes` array, y must hold the labels 0..{len(names) - 1}")
        classes = names
    # uint8 images are 0..255 pixels; anything else is standardised per channel/feature.
    scaling = RESCALE_UNIT if x.dtype == np.uint8 and cfg.input == "image" else STANDARDIZE
    features = [f"x{i}" for i in range(x.shape[-1])] if cfg.input == "tabular" else ["x"]
    schema = Schema(source="npz", task=task, input_kind=cfg.input, input_shape=list(x.shape[1:]), features=features,
                    scaling=scaling, classes=classes, target=targets, n_rows=len(x))
    return Dataset(x.astype("float32"), encoded, schema)


def read_arrays(path: Path, where: str) -> dict[str, np.ndarray]:
    """The arrays of a .npy or .npz file; Python objects (pickles) are never loaded."""
    if not path.is_file():
        raise DataError(f"{where}: file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError) as exc:
        if "pickle" in str(exc).lower():
            raise DataError(f"{where}: {path} holds Python objects (a pickle), which are never loaded; save plain "
                            "numeric arrays (numpy.savez)") from None
        raise DataError(f"{where}: {path} is not a readable .npy/.npz file ({type(exc).__name__})") from None


def _load_digits(task: Task) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype("float32")[..., np.newaxis]  # (n, 8, 8, 1), values 0..16
    schema = Schema(source="digits", task=task, input_kind="image", input_shape=[8, 8, 1], features=["pixels"],
                    scaling=Scaling("rescale", 1.0 / 16.0), classes=[str(c) for c in bunch.target_names],
                    target=["digit"], n_rows=len(x))
    return Dataset(x, bunch.target.astype("int64"), schema)


def _load_sklearn_table(name: str, task: Task) -> Dataset:
    import sklearn.datasets as skd

    bunch = getattr(skd, f"load_{name}")()
    x = bunch.data.astype("float32")
    classes = [str(c) for c in bunch.target_names] if task.single_label else []
    schema = Schema(source=name, task=task, input_kind="tabular", input_shape=[x.shape[1]],
                    features=[str(f) for f in bunch.feature_names], scaling=STANDARDIZE, classes=classes,
                    target=["target"], n_rows=len(x))
    return Dataset(x, bunch.target.astype(task.dtype()), schema)


def read_table(path: Path, where: str = "data.path") -> pd.DataFrame:
    """A CSV or Parquet file (by its suffix) as a DataFrame, with a clear error when unreadable or
    when two columns share a name (pandas would rename one `name.1`, and a repeated target would
    become a feature)."""
    if not path.is_file():
        raise DataError(f"{where}: file not found: {path}")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        if parquet:
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            frame = pd.read_parquet(path)
        else:
            with open(path, newline="", encoding="utf-8") as handle:
                names = next(csv.reader(handle), [])
            frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError,
            csv.Error) as exc:
        raise DataError(f"{where}: cannot read {path} as {'Parquet' if parquet else 'CSV'}: "
                        f"{str(exc).splitlines()[0]}") from None
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{where}: {path} has more than one column named {', '.join(map(repr, repeated))}; "
                        "every column needs its own name")
    if frame.empty:
        raise DataError(f"{where}: {path} has no rows")
    return frame


def _load_table(source: Source, path: Path, like: Schema | None = None) -> Dataset:
    """A CSV/Parquet table: typed feature columns, or a sequence/window/image-path view of it."""
    cfg, task = source.data, source.task
    frame = read_table(path)
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    special = list(dict.fromkeys(c for c in (cfg.time_column, source.key_column) if c))
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
    if like is not None and features != like.features:
        lacking = [c for c in like.features if c not in features]
        extra = [c for c in features if c not in like.features]
        detail = "; ".join(part for part in (f"lacks {lacking}" if lacking else "",
                                             f"has {extra} besides" if extra else "") if part)
        raise DataError(f"{path}: its feature columns differ from the main table's ({detail or 'another order'}); "
                        f"a separate source needs the same columns: {like.features}")
    if cfg.window is not None:
        return _windows(cfg, task, frame, features, targets[0], path)
    key = source.split.key_values(frame[source.key_column], str(path)) if source.key_column else None
    y, classes = task.encode_targets(frame, targets, str(path), _known_classes(like))
    common = dict(source=cfg.source, task=task, classes=classes, target=targets, n_rows=len(frame))
    where = str(path)
    if cfg.input_kind == "sequence":
        x = _wide_sequences(frame, features, cfg.steps, where)
        schema = Schema(input_kind="sequence", input_shape=list(x.shape[1:]), features=features, scaling=STANDARDIZE,
                        **common)
        return Dataset(x, y, schema, key)
    declared = dict(cfg.columns)
    if like is not None:
        declared.update({c.name: c.kind for c in like.columns})
    specs = columns_lib.column_specs(frame, features, declared, cfg.missing, where, cfg.text.model_dump())
    kinds = {s.name: s.kind for s in specs}
    images = [name for name, kind in kinds.items() if kind == "image"]
    if cfg.input_kind == "image" or images:
        if len(features) != 1 or not images:
            raise DataError(f"{path}: image input reads one image-path column; features are {kinds} "
                            "(mixing images with other columns is not supported)")
        root = Path(cfg.image.root) if cfg.image.root else path.parent
        files = [image_path(path, value, row, root) for row, value in enumerate(frame[images[0]])]
        return _image_dataset(cfg, files, y, common, key, like)
    if cfg.input_kind == "text":
        texts = [name for name, kind in kinds.items() if kind == "text"]
        if len(features) != 1 or not texts:
            raise DataError(f"{path}: data.input is text, which reads one text column; features are {kinds} "
                            "(set data.features to the text column, or use tabular input)")
    table = _typed(frame[features], specs)
    if cfg.input_kind == "text":
        schema = Schema(input_kind="text", input_shape=[cfg.text.sequence_length], features=features,
                        scaling=NO_SCALING, columns=specs, text_embed_dim=cfg.text.embed_dim, **common)
    else:
        schema = Schema(input_kind="tabular", input_shape=[len(features)], features=features, scaling=STANDARDIZE,
                        columns=specs, text_embed_dim=cfg.text.embed_dim,
                        categorical_encoding=cfg.categorical_encoding, **common)
    return Dataset(table, y, schema, key)


def _typed(frame: pd.DataFrame, specs: list[ColumnSpec]) -> pd.DataFrame:
    """Each column in one storable type: floats (NaN), or strings (None where missing)."""
    typed = {}
    for spec in specs:
        values = frame[spec.name]
        if spec.kind == "numeric":
            typed[spec.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif spec.kind == "categorical":
            typed[spec.name] = pd.Series(columns_lib.category_strings(values), dtype="object")
        else:
            typed[spec.name] = pd.Series([None if pd.isna(v) else str(v) for v in values], dtype="object")
    return pd.DataFrame(typed)


def image_path(table: Path, value, row: int, root: Path) -> str:
    """An image-path cell as a file path (relative paths are relative to the table's folder), which
    must lie under `root`: a table cannot make the pipeline read files elsewhere."""
    if pd.isna(value):
        raise DataError(f"{table}: image path missing at row {row}")
    candidate = Path(str(value))
    candidate = candidate if candidate.is_absolute() else table.parent / candidate
    if not inside(root, candidate):
        raise DataError(f"{table}: the image path at row {row} ({value}) leads outside {root}; images are read "
                        "from under that folder only (data.image.root sets another one)")
    return str(candidate)


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, links followed, lies under the folder `root`."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def _numeric_block(frame: pd.DataFrame, features: list[str], where: str) -> np.ndarray:
    """Numeric feature columns as float32 with no gaps, naming the first bad column and row."""
    columns_lib.check_values(frame, [ColumnSpec(c, "numeric", "mean", c) for c in features], where)
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


def _windows(cfg: DataConfig, task: Task, frame: pd.DataFrame, features: list[str], target: str,
             path: Path) -> Dataset:
    """Sliding windows over a time-ordered table: `length` rows of features -> target `horizon` rows later."""
    where = str(path)
    time = columns_lib.time_values(frame[cfg.time_column], where)
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
                    features=features, scaling=STANDARDIZE, target=[target], n_rows=count)
    # each window's key is the time of the row it predicts: time-ordered splits use it
    return Dataset(x, y, schema, key=time[starts + length + horizon - 1])


def _load_image_folder(source: Source, root: Path, like: Schema | None = None) -> Dataset:
    """One sub-folder per class, or a flat folder with a labels CSV (file,label)."""
    cfg, task = source.data, source.task
    if cfg.labels and like is None:
        labels_path = Path(cfg.labels)
        table = read_table(labels_path, "data.labels")
        label_column = cfg.target if isinstance(cfg.target, str) else "label"
        absent = [c for c in ("file", label_column) if c not in table.columns]
        if absent:
            raise DataError(f"data.labels: {labels_path} lacks column(s) {absent}; it needs file and {label_column}")
        files = [str(root / str(f)) for f in table["file"]]
        outside = next((f for f in files if not inside(root, Path(f))), None)
        if outside is not None:
            raise DataError(f"data.labels: {labels_path} names {outside}, outside the image folder {root}; images "
                            "are read from under it only")
        labels = table[label_column]
    else:
        found, names = class_folders(root)
        files, labels = [str(f) for f in found], pd.Series(names)
    label_frame = pd.DataFrame({"label": labels.to_numpy()})
    y, classes = task.encode_targets(label_frame, ["label"], str(root), _known_classes(like))
    common = dict(source="images", task=task, classes=classes, target=["label"], n_rows=len(files))
    return _image_dataset(cfg, files, y, common, None, like)


def _image_dataset(cfg: DataConfig, files: list[str], y: np.ndarray, common: dict, key, like: Schema | None) -> Dataset:
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
    return Dataset(ImageFiles(tuple(files), settings), y, schema, key)
