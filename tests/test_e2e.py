"""`dvc repro` and `dvc exp run -S` on a temporary copy of the repo, tiny budget."""

import json
import os
import re
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import yaml

from pipeline.config import compose_params
from tests.conftest import REPO, copy_repo

# slow (about 6 minutes): run by `.ci/run` explicitly, and by `pytest -m slow`
pytestmark = pytest.mark.slow

TINY_E2E = ["train.epochs=2", "train.verbose=0", "search.max_trials=2", "search.trials_per_round=2",
            "search.rounds=1", "search.top_k=1", "search.max_epochs=2", "search.time_budget_s=60",
            "search.tuner=random"]


def run(command, cwd, capture: bool = True, **kwargs):
    """`command` in `cwd`, asserting it succeeded. `capture=False` for a command that leaves processes
    behind (`dvc queue start`): they would hold the captured pipes open, and the wait with them."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    output = {"capture_output": True, "text": True} if capture else \
        {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    result = subprocess.run(command, cwd=cwd, env=env, **output, **kwargs)
    assert result.returncode == 0, ((result.stdout or "")[-3000:], (result.stderr or "")[-3000:])
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"))


def test_dvc_repro_end_to_end(repo):
    # Digits with an unreachable goal, so the redesign search runs too.
    params = compose_params(["goal.threshold=1.0", *TINY_E2E], REPO / "conf")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout
    for stage in ("goal", "prepare", "split", "design", "train", "redesign", "validate", "export", "report"):
        assert f"Running stage '{stage}'" in out

    test = json.loads((repo / "metrics" / "test.json").read_text())
    assert test["metric"] == "accuracy" and test["threshold"] == 1.0 and test["goal_met"] is False
    assert test["margin"] == pytest.approx(test["value"] - 1.0)
    # the one metrics file DVC lists: the goal metric first, the MLflow run beside it
    shown = json.loads((repo / "metrics" / "summary.json").read_text())
    assert list(shown)[:2] == ["accuracy", "goal_met"] and shown["accuracy"] == test["value"]
    assert shown["trials"] == 2 and shown["params"] > 0 and re.fullmatch(r"[0-9a-f]{32}", shown["mlflow_run"])
    summary = json.loads((repo / "artifacts" / "redesign" / "summary.json").read_text())
    assert summary["searched"] and summary["trials"] == 2
    # error analysis of digits: a gallery of the worst test images, and every DVC plot file present
    assert (repo / "artifacts" / "validate" / "worst_examples.png").stat().st_size > 1000
    for plot in ("artifacts/redesign/curves.csv", "artifacts/validate/reliability.png",
                 "artifacts/validate/confusion_normalised.png"):
        assert (repo / plot).is_file(), plot

    predicted = run([sys.executable, "-m", "pipeline", "predict", "--input", "artifacts/export/sample_input.csv",
                     "--output", "preds.csv"], repo)
    assert "5 predictions" in predicted.stdout
    preds = pd.read_csv(repo / "preds.csv")
    assert set(preds["prediction"].astype(str)) <= {str(d) for d in range(10)}
    assert preds.filter(like="prob_").sum(axis=1).round(4).eq(1).all()

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("automl-pipeline")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["goal_met"] == "false" and parent.data.tags["pipeline_state"] == "closed"
    assert parent.data.metrics["validate.accuracy"] == pytest.approx(test["value"])
    assert all(parent.data.tags[f"stage.{s}"] == "done" for s in ("goal", "train", "redesign", "export", "report"))
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trials = [r for r in children if r.data.tags["kind"] == "redesign-trial"]
    assert len(trials) == 2 and all("learning_rate" in t.data.params for t in trials)
    # every run's epoch curves under the same names and steps (from 1), written as each epoch ended
    for run_id in (parent.info.run_id, trials[0].info.run_id):
        assert [m.step for m in client.get_metric_history(run_id, "val_goal")][0] == 1
    # joined to the code and the data: git commit, the data set as an input, system metrics sampled
    assert re.fullmatch(r"[0-9a-f]{40}", parent.data.tags["mlflow.source.git.commit"])
    (dataset,) = [d.dataset for d in parent.inputs.dataset_inputs]
    assert dataset.name == "digits" and dataset.digest and '"features_shape": [1797, 8, 8, 1]' in dataset.profile
    assert dataset.schema and dataset.source_type == "code"
    assert any(name.startswith("system/cpu_utilization") for name in parent.data.metrics)
    # the exported design's hyperparameters, beside the initial design's
    assert parent.data.params["redesign.chosen.origin"] in ("trained", "search", "ensemble")
    assert parent.data.params["redesign.chosen.family"] and parent.data.params["design.family"] == "cnn"
    assert all(t.data.tags["round"] == "1" and float(t.data.tags["data_fraction"]) < 1 for t in trials)
    full = [r for r in children if r.data.tags["kind"] == "redesign-full-training"]
    assert len(full) == 1 and full[0].data.tags["data_fraction"] == "1.0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"model", "validate", "train", "redesign", "report"} <= artifacts
    assert "Goal missed" in (repo / "reports" / "index.html").read_text()
    # the goal was missed: the registered version is tagged so, and there is no champion
    version = client.get_model_version("automl-digits", "1")
    assert version.tags["goal_missed"] == "true" and version.run_id == parent.info.run_id
    assert not client.get_registered_model("automl-digits").aliases
    redesign_files = {a.path for a in client.list_artifacts(parent.info.run_id, "redesign")}
    assert {"redesign/history.json", "redesign/history.md", "redesign/trials.csv"} <= redesign_files

    status = run(["dvc", "status"], repo).stdout
    assert "up to date" in status
    # `dvc plots show` offline: the PNG plots are plain images beside the Vega ones
    run(["dvc", "plots", "show", "-o", "plots_html"], repo)
    page = (repo / "plots_html" / "index.html").read_text()
    for picture in ("train_curves.png", "redesign_curves.png", "validate_confusion.png", "validate_roc_pr.png",
                    "validate_reliability.png"):
        found = re.search(rf'<img[^>]+src="([^"]+artifacts_{re.escape(picture)})"', page)
        assert found and (repo / "plots_html" / found.group(1)).stat().st_size > 1000, picture


def stages_run(out: str) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", out))


def repro_after(repo, key: str, value) -> set[str]:
    """Change one params.yaml key, `dvc repro`, and say which stages ran."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    section, name = key.split(".")
    params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return stages_run(run(["dvc", "repro"], repo).stdout)


def test_a_changed_key_reruns_only_the_stages_that_read_it(repo):
    # after test_dvc_repro_end_to_end: everything is up to date
    assert repro_after(repo, "train.verbose", 1) == set()  # display only
    assert repro_after(repo, "search.time_budget_s", 61) == {"redesign", "validate", "export", "report"}
    assert repro_after(repo, "goal.threshold", 0.999) == {"goal", "redesign", "validate", "export", "report"}


def test_dvc_exp_run_composes_hydra_overrides(repo):
    # wine's 120 training rows need more than two epochs to beat always predicting the majority class
    longer = [o for o in TINY_E2E if not o.startswith(("train.epochs=", "search.max_epochs="))]
    out = run(["dvc", "exp", "run", "-S", "data=wine", "-S", "goal.threshold=0.5", "-S", "train.epochs=20",
               "-S", "search.max_epochs=10", *[f"-S{o}" for o in longer]], repo).stdout
    assert "Running stage 'prepare'" in out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["source"] == "wine" and params["goal"]["task"] == "multiclass"
    assert params["train"]["epochs"] == 20
    schema = json.loads((repo / "artifacts" / "prepared" / "schema.json").read_text())
    assert schema["source"] == "wine"
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "goal_met" in shown
    # one small metrics file: a default `dvc exp show` fits a wide terminal
    latest = json.loads(shown)[0]["data"]  # the workspace: the experiment just run
    assert list(latest["metrics"]) == ["metrics/summary.json"]
    assert len(latest["metrics"]["metrics/summary.json"]["data"]) <= 10
