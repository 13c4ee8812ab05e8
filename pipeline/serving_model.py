"""The MLflow pyfunc model, logged as code ("models from code"): raw rows in, predictions out.

MLflow copies this file into the logged model and runs it when the model is loaded, so nothing
is unpickled; the Keras model inside is loaded with safe mode on. The schema saved beside the
model supplies the column encodings, as for `python -m pipeline predict`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

REQUEST = Path("request")  # how error messages name the rows of a serving request


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

        x = frame_inputs(pd.DataFrame(model_input), self.schema, REQUEST)
        return self.schema.task.predictions_frame(inputs.predict(self.model, x), self.schema.classes)


mlflow.models.set_model(PipelineModel())
