"""A shared tracking server: `mlflow server` on a local PostgreSQL with a proxied artifact
store, and two pipelines writing to it at once (parent runs, nested trial runs, registry), one of
them with two search workers.

Slow (about 3 minutes); CI runs it explicitly (.ci/run installs Debian's `postgresql` and sets
REQUIRE_POSTGRES=1). Elsewhere it is skipped when PostgreSQL or psycopg2 is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.config import compose_params
from tests.conftest import ALL_STAGES, REPO

QUICK = ["data=breast_cancer", "train.epochs=3", "train.verbose=0", "search.max_trials=2", "search.trials_per_round=2",
         "search.rounds=1", "search.top_k=1", "search.max_epochs=2", "search.time_budget_s=40",
         "search.ensemble=false", "goal.threshold=0.9999"]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _missing() -> str | None:
    if _postgres_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def tracking_server(tmp_path):
    """(server URI, artifact folder): a fresh PostgreSQL cluster and an `mlflow server` in front of it."""
    missing = _missing()
    if missing:
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(missing)
        pytest.skip(missing)
    pg = _postgres_bin()
    # Not under pytest's temp folder: that one is private to this user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="automl-postgres-"))
    as_postgres = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*as_postgres, str(pg / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, str(pg / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "start",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1"], check=True, capture_output=True)
    server = None
    try:
        subprocess.run([*as_postgres, str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow",
                        "mlflow"], check=True, capture_output=True)
        web, artifacts = _free_port(), tmp_path / "artifacts"
        with open(tmp_path / "server.log", "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(web),
                 "--backend-store-uri", f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/mlflow",
                 "--artifacts-destination", artifacts.as_uri(), "--workers", "2"], stdout=log, stderr=subprocess.STDOUT)
        uri = f"http://127.0.0.1:{web}"
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        yield uri, artifacts
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        subprocess.run([*as_postgres, str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _pipeline(root: Path, overrides: list[str], uri: str) -> subprocess.Popen:
    """Every stage, one after another, as `dvc repro` runs them, in a shell of its own."""
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(compose_params(overrides, REPO / "conf"), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("DVC_ROOT", None)
    stages = " && ".join(f"{sys.executable} -m pipeline {stage}" for stage in ALL_STAGES)
    return subprocess.Popen(["bash", "-c", stages], cwd=root, env=env, stdout=open(root / "run.log", "w"),
                            stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_pipelines_at_once_log_to_one_postgres_backed_server(tracking_server, tmp_path):
    uri, artifacts = tracking_server
    # the first pipeline runs its trials on 2 search workers, which log their nested runs themselves
    workers = ["search.workers=2", "search.max_trials=4", "search.trials_per_round=4", "search.time_budget_s=150"]
    runs = [_pipeline(tmp_path / f"run{seed}", [*QUICK, f"train.seed={seed}", *(workers if seed == 0 else [])], uri)
            for seed in (0, 1)]
    for seed, process in enumerate(runs):
        assert process.wait(timeout=900) == 0, (tmp_path / f"run{seed}" / "run.log").read_text()[-4000:]

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("automl-pipeline")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's proxied store
    every = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2 and all(p.data.tags["pipeline_state"] == "closed" for p in parents)
    assert sorted(p.data.params["train.seed"] for p in parents) == ["0", "1"]
    for parent in parents:
        assert all(parent.data.tags[f"stage.{s}"] == "done" for s in ALL_STAGES)
        nested = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        trials = [r for r in nested if r.data.tags.get("kind") == "redesign-trial"]
        assert trials and all(r.data.metrics for r in trials), [r.data.tags for r in nested]
        history = client.get_metric_history(trials[0].info.run_id, "loss")
        assert history and [m.step for m in history] == list(range(1, len(history) + 1))
        if parent.data.params["train.seed"] == "0":
            assert len(trials) == 4 and {r.data.tags.get("worker") for r in trials} == {"worker0", "worker1"}
            assert all(r.info.status == "FINISHED" for r in trials)
    versions = client.search_model_versions("name='automl-breast_cancer'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {p.info.run_id for p in parents}
    # the artifacts went through the server into its artifact folder, e.g. the registered model
    assert list(artifacts.rglob("model.keras")) or list(artifacts.rglob("*.keras")), sorted(artifacts.rglob("*"))[:20]
