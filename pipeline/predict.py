"""Predict with an exported model: `python -m pipeline predict --model M --input IN [--output OUT]`.

Inputs are raw, as the user has them; the model carries its own scaling, and the schema saved
beside it carries the column encodings and image settings. Accepted, by the schema's input:
- tables (tabular/text/image-path models): a CSV or Parquet file with the feature columns;
- images: one image file, or a folder of them (searched recursively);
- arrays: NumPy .npy/.npz of shape (n, *input_shape) or (n, prod(input_shape)); for image and
  numeric table models also a CSV with one column per value (pixels row-major).
"""

from __future__ import annotations

import argparse
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import inputs
from pipeline.data import DataError, image_path, read_arrays, read_table
from pipeline.features import check_values, encode
from pipeline.images import ImageFiles, is_image_name
from pipeline.schema import ColumnSpec, Schema

IMAGE_CONTENT = "image_base64"  # a served image model's column of base64-encoded image files


def load_exported(model_path: str | Path):
    """The model (Keras safe mode on) and the schema saved beside it."""
    from pipeline.models.builder import load_model

    model_path = Path(model_path)
    if not model_path.is_file():
        raise DataError(f"predict: model not found: {model_path}")
    schema_path = model_path.parent / "schema.json"
    if not schema_path.is_file():
        raise DataError(f"predict: {schema_path} not found; export writes it beside the model")
    if not zipfile.is_zipfile(model_path):
        raise DataError(f"predict: {model_path} is not a loadable Keras model (not a .keras zip archive); "
                        "export writes one, loaded in safe mode")
    try:
        model = load_model(model_path)
    except Exception as exc:  # noqa: BLE001  (Keras raises many kinds for a bad file; all mean "not loadable")
        raise DataError(f"predict: {model_path} is not a loadable Keras model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}); export writes one, loaded in safe mode") from None
    try:
        schema = Schema.from_json(schema_path)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"predict: {schema_path} is not a schema export wrote ({type(exc).__name__})") from None
    return model, schema


def flat_columns(schema: Schema) -> list[str]:
    """Column names for a model input given as one row of values: features, pixels (row-major) or steps."""
    if schema.input_kind == "tabular":
        return list(schema.features)
    prefix = "pixel" if schema.input_kind == "image" else "value"
    return [f"{prefix}_{i}" for i in range(math.prod(schema.input_shape))]


def flat_frame(x: np.ndarray, schema: Schema) -> pd.DataFrame:
    """Array rows as a table with one column per value, the layout `read_input` accepts back."""
    return pd.DataFrame(np.asarray(x).reshape(len(x), -1), columns=flat_columns(schema))


def read_input(path: str | Path, schema: Schema):
    """(model inputs, row names or None) from a file or folder, checked against the schema."""
    path = Path(path)
    if schema.reads_files and (path.is_dir() or is_image_name(path.name)):
        return _image_files(path, schema)
    if not path.exists():
        raise DataError(f"predict: input not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        return frame_inputs(read_table(path, "predict"), schema, path), None
    if suffix in (".npy", ".npz"):
        if schema.columns or schema.reads_files:
            raise DataError(f"predict: this model reads {'images' if schema.reads_files else 'table columns'} "
                            f"{schema.features}; give a {'image file or folder' if schema.reads_files else 'CSV or Parquet'} file")
        arrays = read_arrays(path, "predict")
        if not arrays:
            raise DataError(f"predict: {path} holds no arrays")
        loaded = arrays.get("x", next(iter(arrays.values())))
        if not np.issubdtype(loaded.dtype, np.number):
            raise DataError(f"predict: {path} must hold numbers; got dtype {loaded.dtype}")
        return _fit_shape(np.asarray(loaded, dtype="float32"), schema, path), None
    raise DataError(f"predict: unsupported input {path.name}; use .csv, .parquet, .npy, .npz"
                    + (", an image file or a folder of images" if schema.reads_files else ""))


def frame_inputs(frame: pd.DataFrame, schema: Schema, source: Path):
    """Model inputs from a table of raw rows: typed columns encoded, numeric columns, or flat arrays.

    `source` names the rows in error messages and anchors relative image paths.
    """
    if schema.columns or schema.reads_files:
        return _table_inputs(frame, schema, source)
    if schema.input_kind == "tabular":
        return _columns_as_array(frame, schema.features, source)
    return _fit_shape(frame.to_numpy(dtype="float32"), schema, source)


def _image_files(path: Path, schema: Schema):
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_name(p.name))
        if not files:
            raise DataError(f"predict: no image files in {path}")
    elif path.is_file():
        files = [str(path)]
    else:
        raise DataError(f"predict: input not found: {path}")
    return ImageFiles(tuple(files), schema.image_settings()), files


def _table_inputs(frame: pd.DataFrame, schema: Schema, path: Path):
    absent = [c for c in schema.features if c not in frame.columns]
    if absent:
        raise DataError(f"predict: {path} lacks column(s) {absent}; the model expects {schema.features}")
    if schema.reads_files:
        column = schema.features[0]
        files = [image_path(path, value, row, path.parent) for row, value in enumerate(frame[column])]
        return ImageFiles(tuple(files), schema.image_settings())
    check_values(frame, schema.columns, str(path))
    return encode(frame, schema.columns, schema.input_kind)


def _columns_as_array(frame: pd.DataFrame, features: list[str], path: Path) -> np.ndarray:
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise DataError(f"predict: {path} lacks column(s) {absent}; the model expects {features}")
    check_values(frame, [ColumnSpec(c, "numeric", "error", c) for c in features], str(path))
    return frame[features].to_numpy(dtype="float32")


def _fit_shape(array: np.ndarray, schema: Schema, path: Path) -> np.ndarray:
    shape = tuple(schema.input_shape)
    if array.shape[1:] == shape:
        return array
    if array.ndim == 2 and array.shape[1] == math.prod(shape):
        return array.reshape((-1, *shape))
    if array.ndim == len(shape) and shape[-1] == 1 and array.shape[1:] == shape[:-1]:
        return array[..., np.newaxis]
    raise DataError(
        f"predict: {path.name} holds arrays of shape {array.shape[1:]}; the model expects {shape} "
        f"(or {math.prod(shape)} values per row)"
    )


def predict_file(model_path: str | Path, input_path: str | Path) -> pd.DataFrame:
    model, schema = load_exported(model_path)
    x, names = read_input(input_path, schema)
    frame = schema.task.predictions_frame(inputs.predict(model, x), schema.classes)
    if names is not None:
        frame.insert(0, "file", names)
    return frame


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="artifacts/export/model.keras", help="exported .keras model")
    parser.add_argument("--input", required=True, help="table (.csv/.parquet), image file or folder, .npy/.npz")
    parser.add_argument("--output", help="CSV to write (default: print to stdout)")
    args = parser.parse_args(argv)
    frame = predict_file(args.model, args.input)
    if args.output:
        frame.to_csv(args.output, index=False)
        print(f"predict: {len(frame)} predictions -> {args.output}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0
