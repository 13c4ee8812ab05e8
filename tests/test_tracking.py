import mlflow
import pytest

from pipeline.tracking import STATE_TAG, stage_run, tracking_uri
from tests.conftest import make_config


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_default_store_is_sqlite_at_the_repo_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking_uri(make_config()) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracking_uri(make_config("tracking.uri=sqlite:///x.db")) == "sqlite:///x.db"


def test_stages_share_one_parent_run_until_it_is_closed(store):
    cfg = make_config("data=wine")
    with stage_run(cfg, "goal") as run:
        first = run.run_id
        run.log_metrics({"a": 1.0})
    with stage_run(cfg, "redesign") as run:
        assert run.run_id == first
        child = run.start_child("trial-0", {"kind": "redesign-trial"})
        child.log_epoch(1, {"val_goal": 0.5})
        child.finish({}, {}, {})
        run.close_pipeline("goal met")
    with stage_run(cfg, "goal") as run:
        assert run.run_id != first
    client = mlflow.MlflowClient(store)
    parent = client.get_run(first)
    assert parent.data.tags[STATE_TAG] == "closed" and parent.data.metrics["goal.a"] == 1.0
    assert parent.data.params["data.source"] == "wine"
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{first}'")
    assert len(children) == 1 and children[0].data.metrics["val_goal"] == 0.5


def test_a_different_config_gets_its_own_run(store):
    with stage_run(make_config("data=wine"), "goal") as run:
        wine = run.run_id
    with stage_run(make_config("data=breast_cancer"), "goal") as run:
        assert run.run_id != wine


def test_tracking_off_logs_nothing(store, tmp_path):
    with stage_run(make_config("tracking.enabled=false"), "goal") as run:
        assert not run.enabled and run.run_id is None
        run.log_metrics({"a": 1.0})
    assert not (tmp_path / "mlflow.db").exists()


def test_a_child_run_is_written_live_epoch_by_epoch_under_keras_names(store):
    import time

    import keras
    import numpy as np

    from pipeline.training import EpochLog

    with stage_run(make_config("data=wine"), "redesign") as run:
        parent = run.run_id
        child = run.start_child("round2-trial-3", {"kind": "redesign-trial", "round": 2})

        class Slow(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                time.sleep(0.05)

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(np.ones((8, 3)), np.zeros(8), epochs=3, verbose=0, callbacks=[Slow(), EpochLog(child.log_epoch)])
        child.finish({"learning_rate": 0.01}, {"status": "COMPLETED"}, {"seconds": 1.5, "val_goal_best": None})
        run.log_epoch(1, {"loss": 0.3, "val_goal": float("nan")})
    client = mlflow.MlflowClient(store)
    found = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(found) == 1
    trial = found[0]
    assert trial.info.status == "FINISHED" and trial.data.params["learning_rate"] == "0.01"
    assert trial.data.tags["round"] == "2" and trial.data.tags["mlflow.source.git.commit"]
    history = client.get_metric_history(trial.info.run_id, "loss")
    # one point per epoch, steps from 1 like the parent's curves, each written when its epoch ended
    assert [m.step for m in history] == [1, 2, 3]
    assert history[-1].timestamp - history[0].timestamp >= 80
    assert trial.data.metrics["seconds"] == 1.5 and "val_goal_best" not in trial.data.metrics
    parent_run = client.get_run(parent)
    assert parent_run.data.metrics["loss"] == 0.3 and "val_goal" not in parent_run.data.metrics


def test_the_experiment_opens_on_training_runs_in_the_mlflow_ui(store):
    client = mlflow.MlflowClient(store)
    with stage_run(make_config("data=wine"), "goal") as run:
        kind = client.get_experiment(client.get_run(run.run_id).info.experiment_id).tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"  # the UI's "Machine learning" kind: the runs view
    # an experiment made elsewhere gets the kind; a kind someone set is kept
    bare = client.create_experiment("made-elsewhere")
    chosen = client.create_experiment("chosen-kind", tags={"mlflow.experimentKind": "genai_development"})
    for name in ("made-elsewhere", "chosen-kind"):
        with stage_run(make_config("data=wine", f"tracking.experiment={name}"), "goal"):
            pass
    assert client.get_experiment(bare).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(chosen).tags["mlflow.experimentKind"] == "genai_development"
