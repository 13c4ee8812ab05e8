"""Experiments in parallel: `dvc exp run --queue` and `dvc queue start -j 2` on one MLflow store.

Slow (a few minutes); CI runs it explicitly (.ci/run).
"""

import re
import subprocess
import time

import mlflow
import pytest
import yaml

from pipeline.config import compose_params
from tests.conftest import REPO, copy_repo
from tests.test_e2e import run

QUICK = ["data=breast_cancer", "train.epochs=3", "train.verbose=0", "search.max_trials=1", "search.trials_per_round=1",
         "search.rounds=1", "search.top_k=1", "search.max_epochs=2", "search.time_budget_s=30",
         "search.ensemble=false"]


@pytest.mark.slow
def test_three_queued_experiments_on_two_workers_share_one_store(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    (repo / "params.yaml").write_text(yaml.safe_dump(compose_params(QUICK, REPO / "conf"), sort_keys=False))
    run(["git", "commit", "-qam", "quick params"], repo)
    thresholds = [0.5, 0.6, 0.999]  # the last misses its goal
    quick = [flag for override in QUICK for flag in ("-S", override)]  # `dvc exp run` composes conf/ afresh
    for seed, threshold in enumerate(thresholds):
        run(["dvc", "exp", "run", "--queue", *quick, "-S", f"train.seed={seed}", "-S", f"goal.threshold={threshold}"],
            repo)
    # its workers outlive it; one can miss the empty queue's shutdown (a known race in DVC's queue,
    # treeverse/dvc#10427) and linger until `dvc queue stop` below
    run(["dvc", "queue", "start", "-j", "2"], repo, capture=False)
    try:
        deadline = time.monotonic() + 900
        while True:
            status = run(["dvc", "queue", "status"], repo).stdout
            states = re.findall(r"\b(Queued|Running|Success|Failed)\b", status)
            if len(states) >= 3 and not {"Queued", "Running"} & set(states):
                break
            assert time.monotonic() < deadline, status
            time.sleep(5)
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, capture_output=True)
    assert states.count("Success") == 3, status

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("automl-pipeline")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 3 and all(p.data.tags["pipeline_state"] == "closed" for p in parents)
    assert sorted(float(p.data.params["goal.threshold"]) for p in parents) == thresholds
    for parent in parents:  # every stage of every experiment logged into its own parent run
        assert all(parent.data.tags[f"stage.{s}"] == "done" for s in ("goal", "train", "redesign", "export", "report"))
    versions = client.search_model_versions("name='automl-breast_cancer'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    assert {v.run_id for v in versions} == {p.info.run_id for p in parents}
    missed = [v for v in versions if v.tags.get("goal_missed") == "true"]
    champion = client.get_model_version_by_alias("automl-breast_cancer", "champion")
    assert champion.tags["goal_met"] == "true" and champion.version not in {v.version for v in missed}
