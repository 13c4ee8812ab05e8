"""Predict with an exported model: `python -m pipeline predict --model M --input FILE [--output OUT]`.

Inputs are raw (unscaled) rows or arrays; the model carries its own preprocessing. Accepted:
CSV (tabular: the schema's feature columns; images: one column per pixel, row-major) and
NumPy .npy/.npz arrays of shape (n, *input_shape) or (n, prod(input_shape)).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.data import DataError, Schema, features_to_array


def load_exported(model_path: str | Path):
    """The model (Keras safe mode on) and the schema saved beside it."""
    from pipeline.models import load_model

    model_path = Path(model_path)
    if not model_path.is_file():
        raise DataError(f"predict: model not found: {model_path}")
    schema_path = model_path.parent / "schema.json"
    if not schema_path.is_file():
        raise DataError(f"predict: {schema_path} not found; export writes it beside the model")
    return load_model(model_path), Schema.from_json(schema_path)


def pixel_columns(schema: Schema) -> list[str]:
    return [f"pixel_{i}" for i in range(math.prod(schema.input_shape))]


def read_input(path: str | Path, schema: Schema) -> np.ndarray:
    """Raw model inputs from a file, checked against the schema."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predict: input not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
        if schema.input_kind == "tabular":
            missing = [c for c in schema.features if c not in frame.columns]
            if missing:
                raise DataError(f"predict: {path} lacks column(s) {missing}; the model expects {schema.features}")
            return features_to_array(frame, schema.features, where=str(path))
        array = frame.to_numpy(dtype="float32")
    elif suffix in (".npy", ".npz"):
        loaded = np.load(path)
        if suffix == ".npz":
            loaded = loaded["x"] if "x" in loaded.files else loaded[loaded.files[0]]
        array = np.asarray(loaded, dtype="float32")
    else:
        raise DataError(f"predict: unsupported input {path.name}; use .csv, .npy or .npz")
    return _fit_shape(array, schema, path)


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


def predictions_frame(raw: np.ndarray, schema: Schema) -> pd.DataFrame:
    """Readable predictions: the class (or value) and one probability column per class."""
    if schema.task == "regression":
        return pd.DataFrame({"prediction": raw.reshape(-1)})
    if schema.task == "multilabel":
        frame = pd.DataFrame(raw, columns=[f"prob_{c}" for c in schema.classes])
        frame.insert(0, "prediction", [";".join(c for c, p in zip(schema.classes, row) if p >= 0.5) for row in raw])
        return frame
    if schema.task == "binary":
        positive = raw.reshape(-1)
        probs = np.stack([1 - positive, positive], axis=1)
    else:
        probs = raw
    frame = pd.DataFrame(probs, columns=[f"prob_{c}" for c in schema.classes])
    frame.insert(0, "prediction", np.array(schema.classes)[probs.argmax(axis=1)])
    return frame


def predict_file(model_path: str | Path, input_path: str | Path) -> pd.DataFrame:
    model, schema = load_exported(model_path)
    x = read_input(input_path, schema)
    return predictions_frame(model.predict(x, batch_size=1024, verbose=0), schema)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline predict", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="artifacts/export/model.keras", help="exported .keras model")
    parser.add_argument("--input", required=True, help=".csv, .npy or .npz file of raw inputs")
    parser.add_argument("--output", help="CSV to write (default: print to stdout)")
    args = parser.parse_args(argv)
    frame = predict_file(args.model, args.input)
    if args.output:
        frame.to_csv(args.output, index=False)
        print(f"predict: {len(frame)} predictions -> {args.output}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0
