"""The MLflow pyfunc model, logged as code ("models from code"): raw rows in, predictions out.

MLflow copies this file into the logged model and runs it when the model is loaded, so nothing
is unpickled; the Keras model inside is loaded with safe mode on. The schema saved beside the
model supplies the column encodings, as for `python -m pipeline predict`.

An image model takes the images themselves, base64-encoded in an `image_base64` column; image
file paths (the `image` column) are read only under the folder PIPELINE_IMAGE_ROOT names on the
server, and a request's errors never say whether some other file exists.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

REQUEST = Path("request")  # how error messages name the rows of a serving request
IMAGE_ROOT = "PIPELINE_IMAGE_ROOT"


class PipelineModel(PythonModel):
    """Predictions (class and probabilities, or value) for a DataFrame of raw input rows."""

    def load_context(self, context) -> None:
        from pipeline.models.builder import load_model
        from pipeline.schema import Schema

        self.model = load_model(context.artifacts["model"])
        self.schema = Schema.from_json(context.artifacts["schema"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from pipeline import inputs
        from pipeline.predict import frame_inputs

        frame = pd.DataFrame(model_input)
        x = request_images(frame, self.schema) if self.schema.reads_files else frame_inputs(frame, self.schema, REQUEST)
        return self.schema.task.predictions_frame(inputs.predict(self.model, x), self.schema.classes)


def request_images(frame: pd.DataFrame, schema):
    """The pixels of a request's images: base64 content, or paths under PIPELINE_IMAGE_ROOT."""
    import base64
    import binascii
    import io
    import os

    import numpy as np

    from pipeline.errors import DataError
    from pipeline.images import ImageError, load_image
    from pipeline.predict import IMAGE_CONTENT

    settings, column = schema.image_settings(), schema.features[0]
    root = os.environ.get(IMAGE_ROOT)
    images = []
    for row in range(len(frame)):
        content = frame[IMAGE_CONTENT].iloc[row] if IMAGE_CONTENT in frame else None
        path = frame[column].iloc[row] if column in frame else None
        name = f"{REQUEST} row {row}"
        if isinstance(content, str) and content:
            try:
                data = io.BytesIO(base64.b64decode(content, validate=True))
            except (binascii.Error, ValueError):
                raise DataError(f"{name}: {IMAGE_CONTENT} is not base64") from None
            images.append(load_image(data, settings, name=name))
        elif isinstance(path, str) and path and root:
            file = Path(root, path).resolve()
            if not file.is_relative_to(Path(root).resolve()) or not file.is_file():
                raise DataError(f"{name}: no such image under the served image folder")  # nothing about elsewhere
            try:
                images.append(load_image(file, settings, name=name))
            except ImageError:
                raise DataError(f"{name}: not a readable image") from None
        else:
            raise DataError(f"{name}: give the image as {IMAGE_CONTENT} (base64 bytes)"
                            + (f", or its path under the served folder in `{column}`" if root else ""))
    return np.stack(images).astype("float32")


mlflow.models.set_model(PipelineModel())
