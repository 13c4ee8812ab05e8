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
        with run.nested("trial-0") as child:
            child.log_metric("val_goal", 0.5)
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


def test_log_child_writes_one_nested_run_with_curves(store):
    with stage_run(make_config("data=wine"), "redesign") as run:
        run.log_child("trial-3", {"learning_rate": 0.01}, {"status": "COMPLETED", "round": 2},
                      {"val_goal": [0.5, 0.7, float("nan")]}, {"seconds": 1.5, "val_goal_best": None})
        parent = run.run_id
    client = mlflow.MlflowClient(store)
    child = client.search_runs([client.get_run(parent).info.experiment_id],
                               f"tags.`mlflow.parentRunId` = '{parent}'")[0]
    assert child.data.params["learning_rate"] == "0.01" and child.data.tags["round"] == "2"
    history = client.get_metric_history(child.info.run_id, "val_goal")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.7)]
    assert child.data.metrics["seconds"] == 1.5 and "val_goal_best" not in child.data.metrics
