"""The exported model in MLflow: logged as code with a signature and an input example, registered
(alias `champion` only when the goal is met, else tagged `goal_missed`), and served over HTTP."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import registry
from pipeline.files import read_json
from pipeline.images import ImageFiles
from pipeline.paths import Paths
from pipeline.predict import predict_file
from pipeline.schema import Schema
from pipeline.stages import export, validate
from pipeline.tracking import stage_run
from tests.datagen import mixed_table

NAME = "automl-breast_cancer"


def tracked_config(cfg, uri: str, **goal):
    tracking = cfg.tracking.model_copy(update={"enabled": True, "uri": uri})
    return cfg.model_copy(update={"tracking": tracking, "goal": cfg.goal.model_copy(update=goal)})


def validate_and_export(cfg, paths) -> dict:
    """The last two stages inside a tracked pipeline run, as `dvc repro` runs them."""
    for stage in (validate, export):
        with stage_run(cfg, stage.__name__.rsplit(".", 1)[-1]) as tracker:
            result = stage.run(cfg, paths, tracker)
    return result


@pytest.fixture(scope="module")
def exports(tmp_path_factory, breast_cancer_run):
    """Three exports of one model to one registry: goal met, goal missed, goal met again."""
    cfg, source, _ = breast_cancer_run
    root = tmp_path_factory.mktemp("tracked")
    shutil.copytree(source.root, root, dirs_exist_ok=True)
    paths, uri = Paths(root), f"sqlite:///{root / 'mlflow.db'}"
    manifests = [validate_and_export(tracked_config(cfg, uri, threshold=threshold), paths)
                 for threshold in (0.5, 1.0, 0.5)]
    return paths, uri, manifests, mlflow.MlflowClient(uri)


def test_goal_met_version_becomes_champion(exports):
    _, _, manifests, client = exports
    first = manifests[0]["registered"]
    assert first == {"name": NAME, "version": "1", "uri": f"models:/{NAME}/1", "alias": "champion",
                     "champion_version": "1", "champion_reason": "the first version to meet the goal",
                     "serve": f"mlflow models serve -m models:/{NAME}@champion --env-manager local"}
    version = client.get_model_version(NAME, "1")
    assert version.tags["goal_met"] == "true" and "goal_missed" not in version.tags
    assert float(version.tags["test_accuracy"]) > 0.5


def test_goal_missed_version_is_tagged_and_the_champion_stays(exports):
    _, _, manifests, client = exports
    missed = manifests[1]["registered"]
    assert missed["version"] == "2" and missed["alias"] is None and missed["champion_version"] == "1"
    assert client.get_model_version(NAME, "2").tags["goal_missed"] == "true"
    assert client.get_model_version(NAME, "2").tags["goal_met"] == "false"


def test_a_later_met_version_no_better_on_the_same_test_data_leaves_the_champion(exports):
    _, _, manifests, client = exports
    third = manifests[2]["registered"]  # the same model on the same test rows: equal, not better
    assert third["alias"] is None and third["champion_version"] == "1"
    assert registry.registration_state(third).startswith("goal met; kept: version 1 stays champion")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["champion_reason"].startswith("kept: version 1 stays champion") and tags["goal_met"] == "true"
    assert tags["test_data"] == client.get_model_version(NAME, "1").tags["test_data"]


def test_the_champion_moves_only_to_a_better_version_or_one_tested_on_other_data(tmp_path):
    from pipeline.objective import Objective

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'registry.db'}")
    client.create_registered_model("m")

    def new_version(value, data, metric="accuracy", objective=Objective("accuracy")):
        version = client.create_model_version("m", source=str(tmp_path)).version
        return registry.mark_version(client, "m", version, True, metric, value, objective, data)

    assert new_version(0.90, "a")["alias"] == "champion"  # the first to meet the goal
    assert new_version(0.85, "a")["alias"] is None  # worse on the same data
    assert new_version(0.95, "a")["champion_version"] == "3"  # better on the same data
    assert new_version(0.80, "b")["champion_version"] == "4"  # the champion was tested on other data
    assert client.get_model_version("m", "4").tags["champion_reason"] == (
        "version 3, the champion before, was tested on other data")
    lower = Objective("rmse")
    assert new_version(2.0, "b", "rmse", lower)["champion_version"] == "5"  # judged on another metric before
    assert new_version(1.5, "b", "rmse", lower)["champion_version"] == "6"  # lower rmse is better
    assert new_version(1.7, "b", "rmse", lower)["champion_version"] == "6"
    # the same score again, with more digits than the tag keeps (109/114), is equal, not better
    assert new_version(109 / 114, "c")["champion_version"] == "8" and new_version(109 / 114, "c")["alias"] is None


def test_logged_model_has_signature_example_and_no_pickle(exports, tmp_path):
    paths, uri, _, _ = exports
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    features = read_json(paths.export / "schema.json")["features"]
    assert info.signature.inputs.input_names() == features
    assert info.signature.outputs.input_names() == ["prediction", "prob_malignant", "prob_benign"]
    assert info.saved_input_example_info is not None
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path))
    files = {p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file()}
    assert "serving_model.py" in {f.rsplit("/", 1)[-1] for f in files}  # the model is code ...
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]  # ... not a pickle
    requirements = (Path(local) / "requirements.txt").read_text()
    assert "keras==" in requirements and "mlflow==" in requirements


@pytest.mark.parametrize("installed, backend, expected", [
    ({"tensorflow": "2.21.0"}, "tensorflow", "tensorflow==2.21.0"),
    ({"tensorflow": "2.21.0", "nvidia-cudnn-cu12": "9.3"}, "tensorflow", "tensorflow[and-cuda]==2.21.0"),
    ({"tensorflow-cpu": "2.20.0"}, "tensorflow", "tensorflow-cpu==2.20.0"),
    ({"jax": "0.7.1"}, "jax", "jax==0.7.1"),
    ({"jax": "0.7.1", "jax-cuda12-plugin": "0.7.1"}, "jax", "jax[cuda12]==0.7.1"),
    ({}, "tensorflow", None),
])
def test_the_served_models_backend_requirement_follows_what_is_installed(monkeypatch, installed, backend, expected):
    monkeypatch.setattr(registry, "installed_version", installed.get)
    assert registry.backend_requirement(backend) == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, payload: dict):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mlflow_serves_the_champion_over_http(exports, tmp_path):
    paths, uri, _, _ = exports
    port = _free_port()
    # mlflow starts `uvicorn` by name: it lives beside this interpreter, on PATH or not
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3"}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "the server did not answer /ping in 180 s"
            time.sleep(1)

        rows = pd.read_csv(paths.export / "sample_input.csv")
        status, body = _post(port, {"dataframe_split": rows.to_dict(orient="split")})
        assert status == 200, body
        served = pd.DataFrame(body["predictions"])
        expected = predict_file(paths.export / "model.keras", paths.export / "sample_input.csv")
        assert list(served["prediction"]) == list(expected["prediction"])
        assert np.allclose(served[["prob_malignant", "prob_benign"]], expected[["prob_malignant", "prob_benign"]],
                           atol=1e-5)

        status, body = _post(port, {"dataframe_split": rows.drop(columns="mean radius").to_dict(orient="split")})
        assert status == 400 and "mean radius" in body["message"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


def scratch_experiment(tmp_path) -> str:
    """A tracking store and artifact folder of the test's own (the default would be ./mlruns)."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return mlflow.create_experiment("serving", artifact_location=(tmp_path / "artifacts").as_uri())


def test_served_table_model_takes_raw_rows_with_gaps_and_unseen_categories(mixed_run, tmp_path):
    _, paths, _ = mixed_run
    experiment = scratch_experiment(tmp_path)
    raw = pd.read_csv(paths.export / "sample_input.csv")
    schema = Schema.from_json(paths.export / "schema.json")
    example = registry.serving_example(raw, schema)
    predictions = predict_file(paths.export / "model.keras", paths.export / "sample_input.csv")
    with mlflow.start_run(experiment_id=experiment):
        info = registry.log_serving_model(mlflow, paths.export, example, predictions, "automl-mixed")
    model = mlflow.pyfunc.load_model(info.model_uri)

    rows = mixed_table(rows=6, seed=3).drop(columns="label")
    rows.loc[0, "city"] = "marseille"  # never seen in training
    rows.loc[1, "age"] = np.nan
    rows.loc[2, "note"] = None
    rows["age"] = rows["age"].astype("float64")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    served = model.predict(rows)
    expected = predict_file(paths.export / "model.keras", tmp_path / "rows.csv")
    assert list(served["prediction"]) == list(expected["prediction"])
    assert np.allclose(served.filter(like="prob_"), expected.filter(like="prob_"), atol=1e-5)


def test_served_image_model_reads_image_content_like_predict_reads_files(image_run, tmp_path):
    _, paths, _, root = image_run
    experiment = scratch_experiment(tmp_path)
    files = sorted((root / "photos").rglob("*.png"))[:4]
    expected = predict_file(paths.export / "model.keras", root / "photos")
    expected = expected.set_index("file").loc[[str(f) for f in files]]
    schema = Schema.from_json(paths.export / "schema.json")
    example = registry.serving_example(ImageFiles(tuple(map(str, files)), schema.image_settings()), schema)
    assert list(example.columns) == ["image_base64"]  # the images travel in the request
    with mlflow.start_run(experiment_id=experiment):
        info = registry.log_serving_model(mlflow, paths.export, example, expected.reset_index(drop=True), "automl-images")
    served = mlflow.pyfunc.load_model(info.model_uri).predict(example)
    assert list(served["prediction"]) == list(expected["prediction"])
    assert np.allclose(served.filter(like="prob_"), expected.filter(like="prob_"), atol=1e-5)


def test_a_registered_model_is_the_backbone_of_a_new_design(image_run, tmp_path):
    """`models:/<name>/<version>` as `model.backbone.network`: the registered model's layers up to its
    head, fed the new images in the pixel units it was trained on (here -1..1 scaling)."""
    import keras

    from pipeline.designs import initial_design
    from pipeline.models import transfer
    from pipeline.models.builder import build_model, load_model
    from tests.conftest import make_config

    cfg, paths, _, root = image_run
    experiment = scratch_experiment(tmp_path)
    files = sorted((root / "photos").rglob("*.png"))[:4]
    expected = predict_file(paths.export / "model.keras", root / "photos").set_index("file").loc[list(map(str, files))]
    schema = Schema.from_json(paths.export / "schema.json")
    example = registry.serving_example(ImageFiles(tuple(map(str, files)), schema.image_settings()), schema)
    with mlflow.start_run(experiment_id=experiment):
        registry.log_serving_model(mlflow, paths.export, example, expected.reset_index(drop=True), "automl-reused")
    design = initial_design(make_config("data=images", f"data.path={root / 'photos'}", "data.image.size=[12,12]",
                                        "model=backbone", "model.backbone.network=models:/automl-reused/1"))
    model = build_model(design, schema)
    assert transfer.find_backbone(model) is not None and transfer.trainable_count(model) == 128 * 3 + 3
    source = load_model(paths.export / "model.keras")
    if any(layer.name == "member_0" for layer in source.layers):  # the refit's seeded copies: the first is reused
        source = source.get_layer("member_0")
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 12, 12, 3)).astype("float32")
    features = keras.Model(model.input, model.get_layer("output").input).predict(pixels, verbose=0)
    original = keras.Model(source.input, source.get_layer("output").input).predict(pixels, verbose=0)
    assert np.allclose(features, original, atol=1e-4)
