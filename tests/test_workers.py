"""Parallel subset trials: the redesign stage as KerasTuner's chief, with local search workers."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
import yaml

from pipeline.config import compose_params
from pipeline.files import read_json
from pipeline.paths import Paths
from pipeline.search.workers import cpu_shares
from tests.conftest import REPO, TINY, make_config, run_stages

WORKERS = ["search.workers=2", "search.rounds=2", "search.trials_per_round=3", "search.max_trials=6",
           "search.stop_on_goal=false", "goal.threshold=0.999", "search.tuner=random"]


def test_cpu_shares_split_the_cores_between_workers():
    assert cpu_shares(2, [0, 1]) == [[0], [1]]
    assert cpu_shares(2, [0, 1, 2, 3, 4]) == [[0, 1, 2], [3, 4]]
    assert cpu_shares(3, [0, 1]) == [[0], [1], [0]]


def test_each_local_worker_gets_its_cores_its_gpu_and_shares_gpu_memory(tmp_path, monkeypatch):
    from pipeline.search import workers

    started = []
    monkeypatch.setattr(workers.subprocess, "Popen", lambda command, cwd, env: started.append((command, env)))
    spec = workers.SearchSpec("run1", str(tmp_path), {}, None)
    pool = workers.WorkerPool(tmp_path, 2, spec, "0.0.0.0", gpus=[0, 1])
    for k, place in enumerate([([0], 0), ([1], 1)]):
        pool._start(f"worker{k}", *place)
    for k, (command, env) in enumerate(started):
        assert command[command.index("--cores") + 1] == str(k) and env["CUDA_VISIBLE_DEVICES"] == str(k)
        assert command[command.index("--oracle-host") + 1] == "127.0.0.1"
        assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert "KERASTUNER_TUNER_ID" not in env


def test_config_refuses_a_worker_count_below_one():
    with pytest.raises(Exception, match="search.workers"):
        make_config("search.workers=0")


def searched(tmp_path, *overrides):
    cfg = make_config("data=wine", *TINY, *WORKERS, *overrides)
    paths = Paths(tmp_path)
    run_stages(cfg, paths, ("goal", "prepare", "split", "design", "train", "redesign"))
    return cfg, paths


def test_two_workers_share_the_trials_of_every_round(tmp_path, capsys):
    cfg, paths = searched(tmp_path)
    trials = pd.read_csv(paths.redesign / "trials.csv")
    assert len(trials) == 6 and list(trials["round"].value_counts().sort_index()) == [3, 3]
    assert set(trials["worker"]) == {"worker0", "worker1"}
    assert (trials["status"] == "COMPLETED").all()
    summary = read_json(paths.redesign / "summary.json")
    assert summary["searched"] and summary["trials"] == 6 and summary["rounds"] == 2
    out = capsys.readouterr().out
    assert "2 search workers started" in out and " by worker1" in out


def test_the_goal_stops_a_search_on_workers(tmp_path):
    # the initial design's learning rate is too small to learn in time; the searched ones are not
    cfg, paths = searched(tmp_path, "search.stop_on_goal=true", "goal.threshold=0.8", "search.goal_margin=0",
                          "search.max_epochs=15", "search.max_trials=12", "search.trials_per_round=6",
                          "train.epochs=30", "train.early_stopping_patience=5",
                          "train.learning_rate={default: 0.00001, min: 0.00001, max: 0.01, log: true}")
    summary = read_json(paths.redesign / "summary.json")
    assert summary["stop_reason"] == "goal met on validation" and summary["validation"] >= 0.8
    assert summary["trials"] < 12


def test_the_time_budget_ends_a_search_on_workers(tmp_path):
    started = time.monotonic()
    cfg, paths = searched(tmp_path, "search.time_budget_s=25", "search.max_epochs=200", "search.max_trials=50",
                          "search.trials_per_round=25", "train.early_stopping_patience=200", "train.refit=false")
    summary = read_json(paths.redesign / "summary.json")
    assert summary["stop_reason"] == "time budget spent"
    assert time.monotonic() - started < 25 + 60  # the stages before redesign, and one last epoch


def test_a_search_whose_workers_keep_dying_fails_instead_of_waiting(tmp_path, monkeypatch):
    from pipeline.errors import DesignError
    from pipeline.search import workers

    def start_a_worker_that_crashes(self, worker_id, cores, gpu):
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(workers.WorkerPool, "_start", start_a_worker_that_crashes)
    with pytest.raises(DesignError, match=r"search worker\d(, worker\d)? kept dying \(3 restarts"):
        searched(tmp_path)


@pytest.mark.slow
def test_a_killed_worker_is_started_again_and_takes_its_trial_up_again(tmp_path, capsys):
    killed = []

    def kill_a_worker_while_it_trains():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            running = [t for t in tmp_path.rglob("trial_*/trial.json") if '"RUNNING"' in t.read_text()]
            pids = worker_pids()
            if running and len(pids) == 2:
                time.sleep(1.0)  # well into the trial's epochs
                os.kill(pids[-1], signal.SIGKILL)
                killed.append(pids[-1])
            time.sleep(0.2)

    threading.Thread(target=kill_a_worker_while_it_trains, daemon=True).start()
    cfg, paths = searched(tmp_path, "search.rounds=1", "search.trials_per_round=4", "search.max_trials=4",
                          "search.max_epochs=30")
    assert killed
    trials = pd.read_csv(paths.redesign / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "COMPLETED").all()
    assert "exited with code -9; starting it again (1/3)" in capsys.readouterr().out
    assert not worker_pids()  # all stopped with the search


@pytest.mark.slow
def test_two_workers_on_the_jax_backend(tmp_path):
    pytest.importorskip("jax")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose_params(["data=wine", *TINY, *WORKERS],
                                                                        REPO / "conf")))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    for stage in ("goal", "prepare", "split", "design", "train", "redesign"):
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "metrics" / "train.json").read_text())["backend"] == "jax"
    trials = pd.read_csv(tmp_path / "artifacts" / "redesign" / "trials.csv")
    assert len(trials) == 6 and set(trials["worker"]) == {"worker0", "worker1"}
    assert (trials["status"] == "COMPLETED").all()


def worker_pids() -> list[int]:
    """This test process's search workers."""
    mine = str(os.getpid())
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{proc}/cmdline", "rb").read().split(b"\0")
            status = open(f"/proc/{proc}/status").read()
        except OSError:
            continue
        parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        if b"search-worker" in cmdline and parent == mine:
            found.append(int(proc))
    return found
