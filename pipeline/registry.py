"""The exported model in MLflow: logged as a servable pyfunc and registered in the model registry.

The logged model takes raw rows (a DataFrame, as `mlflow models serve` receives them) and
returns the same predictions as `python -m pipeline predict`. Each export registers a new
version; the alias `champion` moves to it only when the goal was met on the test split,
otherwise the version is tagged `goal_missed` and any earlier champion stays.
"""

from __future__ import annotations

import base64
import importlib.metadata
from pathlib import Path

import keras
import pandas as pd

from pipeline.images import ImageFiles
from pipeline.predict import IMAGE_CONTENT, flat_frame
from pipeline.schema import Schema

CHAMPION = "champion"
GOAL_MISSED_TAG = "goal_missed"
SERVING_CODE = Path(__file__).with_name("serving_model.py")
PACKAGE_DIR = Path(__file__).parent
# What the serving code imports, pinned to the versions it was exported with.
SERVING_PACKAGES = ("keras", "numpy", "pandas", "scikit-learn", "pillow", "pyarrow", "pydantic", "pyyaml",
                    "matplotlib", "mlflow")
BACKEND_PACKAGES = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "jax": ("jax",), "torch": ("torch",)}


def model_name(cfg) -> str:
    return cfg.tracking.model_name or f"automl-{cfg.data.source}"


def serving_example(raw, schema: Schema) -> pd.DataFrame:
    """Raw test rows as a serving request carries them: table columns, image paths, or flat values."""
    if isinstance(raw, pd.DataFrame):
        frame = raw[schema.features].copy()
        numeric = [c.name for c in schema.columns_of("numeric")]
        frame[numeric] = frame[numeric].astype("float64")  # a request may send 3, 3.5 or null alike
        return frame.reset_index(drop=True)
    if isinstance(raw, ImageFiles):
        # The images themselves travel in the request; the model decodes and resizes them as in training.
        return pd.DataFrame({IMAGE_CONTENT: [base64.b64encode(Path(f).read_bytes()).decode("ascii")
                                             for f in raw.files]})
    return flat_frame(raw, schema).astype("float64")


def serving_requirements() -> list[str]:
    backend = keras.backend.backend()
    names = list(SERVING_PACKAGES)
    for candidate in BACKEND_PACKAGES.get(backend, ()):
        try:
            importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
        names.append(candidate)
        break
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def log_serving_model(mlflow, export_dir: Path, example: pd.DataFrame, predictions: pd.DataFrame, name: str):
    """Log the pyfunc (signature, input example, pinned requirements) into the active run and register it."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec
    from mlflow.types import Schema as ColumnsSchema

    signature = infer_signature(example, predictions)
    if IMAGE_CONTENT in example.columns:  # an image model: its content, or a path under the served folder
        image = Schema.from_json(export_dir / "schema.json").features[0]
        signature = ModelSignature(ColumnsSchema([ColSpec("string", IMAGE_CONTENT, required=False),
                                                  ColSpec("string", image, required=False)]), signature.outputs)
    return mlflow.pyfunc.log_model(
        name="serving_model",
        python_model=str(SERVING_CODE),
        artifacts={"model": str(export_dir / "model.keras"), "schema": str(export_dir / "schema.json")},
        code_paths=[str(PACKAGE_DIR)],
        signature=signature,
        input_example=example,
        pip_requirements=serving_requirements(),
        registered_model_name=name,
    )


def mark_version(client, name: str, version: str, goal_met: bool, metric: str, value: float) -> dict:
    """Tag the new version with its test result; make it the champion only if the goal was met."""
    client.set_model_version_tag(name, version, "goal_met", str(goal_met).lower())
    client.set_model_version_tag(name, version, f"test_{metric}", f"{value:.6g}")
    if goal_met:
        client.set_registered_model_alias(name, CHAMPION, version)
    else:
        client.set_model_version_tag(name, version, GOAL_MISSED_TAG, "true")
    champion = champion_version(client, name)
    return {
        "name": name,
        "version": str(version),
        "uri": f"models:/{name}/{version}",
        "alias": CHAMPION if goal_met else None,
        "champion_version": champion,
        "serve": f"mlflow models serve -m models:/{name}@{CHAMPION} --env-manager local" if champion else None,
    }


def champion_version(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None
