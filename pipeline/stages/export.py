"""Stage 8, export: the chosen model as .keras (preprocessing inside), its schema and a sample."""

import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from pipeline import inputs
from pipeline.config import PipelineConfig
from pipeline.images import ImageFiles
from pipeline.models import load_model
from pipeline.paths import Paths, load_test_split, read_json, write_json
from pipeline.predict import pixel_columns, predict_file
from pipeline.tracking import StageRun

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
    columns = schema.features if schema.input_kind == "tabular" else pixel_columns(schema)
    pd.DataFrame(raw.reshape(len(raw), -1), columns=columns).to_csv(out / "sample_input.csv", index=False)
    return out / "sample_input.csv"


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    raw_test, x_test, _, schema = load_test_split(paths)
    out = paths.export
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model = load_model(paths.redesign / "model.keras")
    model.save(out / "model.keras")
    schema.to_json(out / "schema.json")

    # A sample of raw test rows, predicted through the same path users call, as a smoke check.
    sample = write_sample(inputs.head(raw_test, SAMPLE_ROWS), schema, out)
    predicted = predict_file(out / "model.keras", sample)
    predicted.to_csv(out / "sample_predictions.csv", index=False)
    expected = inputs.predict(model, inputs.head(x_test, SAMPLE_ROWS))
    shown = predicted.drop(columns=[c for c in ("file", "prediction") if c in predicted.columns])
    numeric = shown.to_numpy() if schema.task != "regression" else predicted[["prediction"]].to_numpy()
    if schema.task == "binary":
        numeric = numeric[:, 1:]
    if not np.allclose(numeric.reshape(expected.shape), expected, atol=1e-5):
        raise RuntimeError("export: the reloaded model predicts differently from the chosen model")

    saved_model = None
    if keras.backend.backend() == "tensorflow":
        # For TF Serving; the .keras file stays the source of truth (any backend, safe mode).
        model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
        saved_model = str((out / "saved_model").relative_to(paths.root))

    test = read_json(paths.metrics / "test.json")
    manifest = {
        "model": str((out / "model.keras").relative_to(paths.root)),
        "schema": str((out / "schema.json").relative_to(paths.root)),
        "saved_model": saved_model or "not written: a TensorFlow SavedModel needs KERAS_BACKEND=tensorflow",
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "goal_met": test["goal_met"],
        "test_value": test["value"],
        "predict": f"python -m pipeline predict --model {out / 'model.keras'} --input {sample}",
    }
    write_json(out / "manifest.json", manifest)
    tracker.log_artifact(out, "model")
    tracker.close_pipeline("goal met" if test["goal_met"] else "goal missed")
    print(f"export: {manifest['model']} ({'goal met' if test['goal_met'] else 'goal missed'}); try: {manifest['predict']}")
    return manifest


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("export")
