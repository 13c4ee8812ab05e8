"""Model inputs of every kind behind one interface: an array, a dict of arrays (a table with
categorical or text columns: one model input each), or image files read lazily in batches.

Fitting, predicting and row selection go through these helpers so that the training, search
and validation code never needs to know which kind it holds.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from pipeline.images import ImageFiles

PREDICT_BATCH = 256
IMAGE_PREDICT_BATCH = 64  # decoded images are large: keep the batches waiting in the queue small
IN_MEMORY_BYTES = 256 * 2**20  # image files that decode to less than this are decoded once and kept


def n_rows(x) -> int:
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def take(x, indices):
    """The rows `indices` of `x`, of the same kind."""
    indices = np.asarray(indices, dtype=int)
    if isinstance(x, ImageFiles):
        return x.take(indices)
    if isinstance(x, dict):
        return {name: values[indices] for name, values in x.items()}
    if isinstance(x, pd.DataFrame):  # raw table rows
        return x.iloc[indices].reset_index(drop=True)
    return x[indices]


def concat(first, second):
    """The rows of `first`, then those of `second` (of the same kind)."""
    if isinstance(first, ImageFiles):
        return ImageFiles(first.files + second.files, first.settings)
    if isinstance(first, dict):
        return {name: np.concatenate([values, second[name]]) for name, values in first.items()}
    if isinstance(first, pd.DataFrame):
        return pd.concat([first, second], ignore_index=True)
    return np.concatenate([first, second])


def head(x, count: int):
    return take(x, np.arange(min(count, n_rows(x))))


@functools.lru_cache(maxsize=4)
def _decoded(images: ImageFiles) -> np.ndarray:
    return images.read()


def in_memory(x):
    """Image files small enough to hold decoded (once per process) as an array; anything else as it is."""
    if isinstance(x, ImageFiles) and x.decoded_bytes <= IN_MEMORY_BYTES:
        return _decoded(x)
    return x


def fit(model, x, y, batch_size: int, validation_data: tuple | None = None, seed: int = 0, **kwargs):
    """`model.fit` on arrays, or on batches read from disk when `x` is image files too large to hold."""
    x = in_memory(x)
    if validation_data is not None:
        validation_data = (in_memory(validation_data[0]), *validation_data[1:])
    devices = _data_parallel_devices()
    if devices > 1:
        from pipeline.compute import batch_for

        x, y, batch_size = *_whole_shares(x, y, devices), batch_for(batch_size)
        if validation_data is not None:
            validation_data = _whole_shares(*validation_data[:2], devices)
    if validation_data is not None and isinstance(validation_data[0], ImageFiles):
        validation_data = _image_batches(*validation_data, IMAGE_PREDICT_BATCH)
    if isinstance(x, ImageFiles):
        return model.fit(_image_batches(x, y, batch_size, shuffle=True, seed=seed), validation_data=validation_data,
                         **kwargs)
    return model.fit(x, y, batch_size=batch_size, validation_data=validation_data, **kwargs)


def _data_parallel_devices() -> int:
    from pipeline import compute

    return len(compute.CURRENT.devices) if compute.CURRENT.data_parallel else 1


def _whole_shares(x, y, devices: int):
    """Data parallel training splits every batch evenly across the devices: the rows are cut to a
    multiple of the device count (at most devices - 1 rows left out), so the last batch splits too."""
    if isinstance(x, ImageFiles):
        raise ValueError("data parallel training needs the images in memory (compute.devices: one device for "
                         "image folders read from disk)")
    keep = n_rows(x) // devices * devices
    return head(x, keep), y[:keep]


def _image_batches(images: ImageFiles, labels, batch_size: int, **kwargs):
    # Imported here: the data stages (prepare, split) use this module but need no Keras.
    from pipeline.image_batches import ImageBatches

    return ImageBatches(images, labels, batch_size, **kwargs)


def predict(model, x) -> np.ndarray:
    x = in_memory(x)
    if isinstance(x, ImageFiles):
        return model.predict(_image_batches(x, None, IMAGE_PREDICT_BATCH), verbose=0)
    devices, rows = _data_parallel_devices(), n_rows(x)
    if devices > 1 and rows % devices:  # padded with copies of the last row to split evenly, then cut back
        pad = np.full(devices - rows % devices, rows - 1)
        return model.predict(concat(x, take(x, pad)), batch_size=PREDICT_BATCH, verbose=0)[:rows]
    return model.predict(x, batch_size=PREDICT_BATCH, verbose=0)


def describe(x, schema) -> list:
    """Each model input of encoded `x`: name, shape (per row), dtype, and what it holds."""
    from pipeline.schema import ModelInput

    if isinstance(x, ImageFiles):
        return [ModelInput("features", x.settings.shape, "float32", kind="image",
                           holds="pixels 0..255 after decoding, colour conversion and resize/pad (pipeline.images)")]
    by_input = {c.input: c for c in schema.columns}
    by_input.update({f"{c.input}_{part}": c for c in schema.columns if c.bag for part in ("ids", "weights")})
    numeric = [c.name for c in schema.columns_of("numeric")]
    parts = x if isinstance(x, dict) else {"features": x}
    described = []
    for name, values in parts.items():
        shape, dtype = list(values.shape[1:]), str(values.dtype)
        column = by_input.get(name) or (schema.columns[0] if schema.input_kind == "text" else None)
        if column is not None:
            words = len(column.vocabulary)
            if column.bag:
                ids = f"0: padding, 1..{words}: n-grams of the vocabulary" if name.endswith("_ids") else \
                    "L2-normalised TF-IDF weight of each n-gram id"
            elif column.kind == "text":
                ids = f"0: padding, 1: unknown word, 2..{words + 1}: vocabulary"
            else:
                ids = f"0: unknown or missing, 1..{words}: vocabulary"
            described.append(ModelInput(name, shape, dtype, kind=column.kind, column=column.name, ids=ids))
        elif numeric:
            described.append(ModelInput(name, shape, dtype, kind="numeric", columns=numeric))
        else:
            described.append(ModelInput(name, shape, dtype, kind=schema.input_kind, columns=schema.features))
    return described
