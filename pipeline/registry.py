"""The exported model in MLflow: logged as a servable pyfunc and registered in the model registry.

The logged model takes raw rows (a DataFrame, as `mlflow models serve` receives them) and
returns the same predictions as `python -m pipeline predict`. Each export registers a new
version; the alias `champion` moves to it only when the goal was met on the test split,
otherwise the version is tagged `goal_missed` and any earlier champion stays.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
from pathlib import Path

import keras
import numpy as np
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
# Per backend, the packages that may provide it: (name, its CUDA extra, a package that extra installs).
BACKEND_PACKAGES = {"tensorflow": (("tensorflow", "and-cuda", "nvidia-cudnn-cu12"), ("tensorflow-cpu", None, None)),
                    "jax": (("jax", "cuda12", "jax-cuda12-plugin"),), "torch": (("torch", None, None),)}


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


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def backend_requirement(backend: str) -> str | None:
    """The backend's package as installed here, pinned; with its CUDA extra when the CUDA wheels are installed."""
    for name, cuda_extra, cuda_package in BACKEND_PACKAGES.get(backend, ()):
        version = installed_version(name)
        if version is not None:
            extra = f"[{cuda_extra}]" if cuda_extra and installed_version(cuda_package) else ""
            return f"{name}{extra}=={version}"
    return None


def serving_requirements() -> list[str]:
    pinned = [f"{name}=={importlib.metadata.version(name)}" for name in SERVING_PACKAGES]  # all are dependencies
    backend = backend_requirement(keras.backend.backend())
    return pinned + ([backend] if backend else [])


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


TEST_DATA_TAG = "test_data"
CHAMPION_REASON_TAG = "champion_reason"


def test_data_digest(rows) -> str:
    """A fingerprint of held-out rows (their raw features and targets): versions tested on the same
    rows can be compared by their scores; on other rows they cannot."""
    digest = hashlib.sha256()
    raw = rows.raw
    if isinstance(raw, pd.DataFrame):
        digest.update(pd.util.hash_pandas_object(raw, index=False).to_numpy().tobytes())
    elif isinstance(raw, ImageFiles):
        for file in raw.files:
            digest.update(Path(file).read_bytes())
    elif raw is not None:
        digest.update(np.ascontiguousarray(raw).tobytes())
    digest.update(np.ascontiguousarray(rows.y).tobytes())
    return digest.hexdigest()[:16]


def mark_version(client, name: str, version: str, goal_met: bool, metric: str, value: float, objective,
                 test_data: str) -> dict:
    """Tag the new version with its test result and test data. It takes the `champion` alias only
    when it meets the goal and either beats the champion on the same test data and metric, or the
    champion was judged on other data (or another metric); why it did or did not is tagged."""
    value = float(f"{value:.6g}")  # as tagged: the champion's score is read back from its tag, at this precision
    client.set_model_version_tag(name, version, "goal_met", str(goal_met).lower())
    client.set_model_version_tag(name, version, f"test_{metric}", f"{value:.6g}")
    client.set_model_version_tag(name, version, TEST_DATA_TAG, test_data)
    if goal_met:
        reason = champion_reason(client, name, metric, value, objective, test_data)
        moved = not reason.startswith("kept")
        if moved:
            client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(name, version, CHAMPION_REASON_TAG, reason)
    else:
        moved, reason = False, None
        client.set_model_version_tag(name, version, GOAL_MISSED_TAG, "true")
    champion = champion_version(client, name)
    return {
        "name": name,
        "version": str(version),
        "uri": f"models:/{name}/{version}",
        "alias": CHAMPION if moved else None,
        "champion_reason": reason,
        "champion_version": champion,
        "serve": f"mlflow models serve -m models:/{name}@{CHAMPION} --env-manager local" if champion else None,
    }


def registration_state(registered: dict) -> str:
    """One line on what registering did: the alias and why, or why not."""
    if registered["alias"]:
        return f"alias {CHAMPION}: {registered['champion_reason']}"
    if registered.get("champion_reason"):
        return f"goal met; {registered['champion_reason']}"
    return f"tagged {GOAL_MISSED_TAG} (champion: {registered['champion_version'] or 'none'})"


def champion_reason(client, name: str, metric: str, value: float, objective, test_data: str) -> str:
    """Why a goal-meeting version does ("...") or does not ("kept: ...") take the alias."""
    current = champion_version(client, name)
    if current is None:
        return "the first version to meet the goal"
    tags = client.get_model_version(name, current).tags
    if tags.get(TEST_DATA_TAG) != test_data:
        return f"version {current}, the champion before, was tested on other data"
    if f"test_{metric}" not in tags:
        return f"version {current}, the champion before, was judged on another metric"
    previous = float(tags[f"test_{metric}"])
    if objective.better_than(value, previous):
        return f"better than version {current} on the same test data ({metric} {value:.6g} vs {previous:.6g})"
    return f"kept: version {current} stays champion, not worse on the same test data ({metric} {previous:.6g} vs {value:.6g})"


def champion_version(client, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None
