"""Stage 8, export: the chosen model as .keras (preprocessing inside), its schema and a sample.

With tracking on, the model is also logged to MLflow as a pyfunc that takes raw rows (signature
and input example included) and registered: alias `champion` if the goal is met, else the
version is tagged `goal_missed`.
"""

import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pipeline import inputs, registry
from pipeline.config import PipelineConfig
from pipeline.files import read_json, write_json
from pipeline.images import ImageFiles
from pipeline.models.builder import load_model
from pipeline.paths import Paths
from pipeline.predict import flat_frame, predict_file
from pipeline.prepared import load_test_split
from pipeline.tracking import StageRun, store_lock, tracking_uri

SAMPLE_ROWS = 5


def write_sample(raw, schema, out: Path) -> Path:
    """A few raw test inputs in the form users give predict: table rows, image files, or arrays."""
    if isinstance(raw, pd.DataFrame):
        raw.to_csv(out / "sample_input.csv", index=False)
        return out / "sample_input.csv"
    if isinstance(raw, ImageFiles):
        folder = out / "sample_images"
        folder.mkdir()
        for i, file in enumerate(raw.files):
            shutil.copy2(file, folder / f"{i:02d}_{Path(file).name}")
        return folder
    if schema.input_kind == "sequence":
        np.save(out / "sample_input.npy", raw)
        return out / "sample_input.npy"
    flat_frame(raw, schema).to_csv(out / "sample_input.csv", index=False)
    return out / "sample_input.csv"


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    test_rows, schema = load_test_split(paths)
    out = paths.export
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = load_model(paths.redesign / "model.keras")
    model.save(out / "model.keras")
    schema.to_json(out / "schema.json")

    # A sample of raw test rows, predicted through the same path users call, as a smoke check.
    raw_sample = inputs.head(test_rows.raw, SAMPLE_ROWS)
    sample = write_sample(raw_sample, schema, out)
    predicted = predict_file(out / "model.keras", sample)
    predicted.to_csv(out / "sample_predictions.csv", index=False)
    expected = schema.task.predictions_frame(inputs.predict(model, inputs.head(test_rows.x, SAMPLE_ROWS)),
                                             schema.classes)
    if not np.allclose(predicted[expected.columns].select_dtypes("number").to_numpy(),
                       expected.select_dtypes("number").to_numpy(), atol=1e-5):
        raise RuntimeError("export: the reloaded model predicts differently from the chosen model")

    saved_model = None
    if keras.backend.backend() == "tensorflow":
        # For TF Serving; the .keras file stays the source of truth (any backend, safe mode).
        model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
        saved_model = str((out / "saved_model").relative_to(paths.root))

    test = read_json(paths.metrics / "test.json")
    registered = None
    if tracker.enabled and cfg.tracking.register_model:
        outputs = predicted.drop(columns="file", errors="ignore")  # the signature needs columns and types
        registered = _register(cfg, registry.serving_example(raw_sample, schema), outputs, out, tracker, test,
                               registry.test_data_digest(test_rows))
    manifest = {
        "model": str((out / "model.keras").relative_to(paths.root)),
        "schema": str((out / "schema.json").relative_to(paths.root)),
        "saved_model": saved_model or "not written: a TensorFlow SavedModel needs KERAS_BACKEND=tensorflow",
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "goal_met": test["goal_met"],
        "test_value": test["value"],
        "predict": f"python -m pipeline predict --model {out / 'model.keras'} --input {sample}",
        "registered": registered or "not registered: tracking.enabled and tracking.register_model are needed",
    }
    write_json(out / "manifest.json", manifest)
    tracker.log_artifact(out, "model")
    print(f"export: {manifest['model']} ({'goal met' if test['goal_met'] else 'goal missed'}); try: {manifest['predict']}")
    if registered:
        print(f"export: registered {registered['uri']} ({registry.registration_state(registered)}); serve: {registered['serve'] or 'no champion yet'}")
    return manifest


def _register(cfg: PipelineConfig, example: pd.DataFrame, predictions: pd.DataFrame, out: Path, tracker: StageRun,
              test: dict, test_data: str) -> dict:
    """Log the raw-rows pyfunc with a signature and input example, register it, set alias or tag."""
    name = registry.model_name(cfg)
    with store_lock(tracking_uri(cfg)):  # parallel experiments register one after another
        info = registry.log_serving_model(tracker.mlflow, out, example, predictions, name)
        return registry.mark_version(tracker.mlflow.MlflowClient(), name, info.registered_model_version,
                                     test["goal_met"], test["metric"], test["value"], cfg.objective, test_data)

