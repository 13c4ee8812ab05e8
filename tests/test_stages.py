"""Each stage on tiny data, through its `run(cfg, paths, tracker)` function."""

import json
import shutil

import keras
import numpy as np
import pandas as pd
import pytest

from pipeline.config import SPLIT_KINDS
from pipeline.errors import DataError
from pipeline.files import read_json
from pipeline.models import trees
from pipeline.paths import Paths
from pipeline.prepared import load_splits
from pipeline.splitting import split_indices
from pipeline.stages.redesign import PLAIN_FAMILIES, refit_copies
from pipeline.stages.validate import GoalMissed
from tests.conftest import ALL_STAGES, TINY, make_config, run_stages


def test_goal_stage_writes_goal(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    goal = read_json(paths.goal)
    assert goal == {"task": "binary", "metric": "accuracy", "threshold": 0.95, "direction": "max",
                    "goal": "accuracy >= 0.95"}


def test_prepare_writes_arrays_and_schema(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    schema = json.loads((paths.prepared / "schema.json").read_text())
    assert schema["input_shape"] == [30] and schema["classes"] == ["malignant", "benign"]
    assert np.load(paths.prepared / "data.npz")["x"].shape == (569, 30)


def test_split_is_stratified_disjoint_and_seeded(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    idx = np.load(paths.split / "indices.npz")
    parts = [set(idx[n]) for n in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 569 and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    y = np.load(paths.prepared / "data.npz")["y"]
    shares = [y[idx[n]].mean() for n in ("train", "validation", "test")]
    assert max(shares) - min(shares) < 0.03
    stratified = SPLIT_KINDS["stratified"]
    again = split_indices(y, stratified(validation=0.15, test=0.2, seed=42))
    assert all((again[n] == idx[n]).all() for n in ("train", "validation", "test"))
    assert not (split_indices(y, stratified(validation=0.15, test=0.2, seed=7))["test"] == idx["test"]).all()


def test_split_with_too_few_rows_per_class_explains(tmp_path):
    y = np.array([0] * 20 + [1])
    with pytest.raises(DataError, match="class 'b' has 1 row\\(s\\); a stratified split needs at least 2 per class"):
        split_indices(y, SPLIT_KINDS["stratified"](seed=0), classes=["a", "b"])


def test_design_records_layer_table_and_train_stats(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    design = read_json(paths.design / "design.json")
    assert design["family"] == "mlp" and len(design["preprocessing"]["mean"]) == 30
    table = (paths.design / "layers.md").read_text()
    assert "| standardize | Normalization | (batch, 30) |" in table and "**total**" in table


def test_train_writes_model_history_and_metrics(breast_cancer_run):
    _, paths, results = breast_cancer_run
    history = pd.read_csv(paths.train / "history.csv")
    assert list(history["epoch"]) == list(range(1, len(history) + 1)) and "val_goal" in history
    train = read_json(paths.metrics / "train.json")
    assert 0.5 < train["validation"] <= 1 and train["epochs_run"] == len(history)


def test_validate_and_export(breast_cancer_run):
    cfg, paths, results = breast_cancer_run
    test = read_json(paths.metrics / "test.json")
    assert set(test) >= {"goal_met", "value", "threshold", "margin"} and test["test_rows"] == 114
    assert test["margin"] == pytest.approx(test["value"] - 0.95)
    assert (paths.validate / "confusion.png").stat().st_size > 1000
    confusion = pd.read_csv(paths.validate / "confusion.csv")
    assert len(confusion) == 114 and set(confusion["actual"]) == {"malignant", "benign"}
    exported = keras.saving.load_model(paths.export / "model.keras")
    x = np.load(paths.prepared / "data.npz")["x"][:3]
    chosen = keras.saving.load_model(paths.redesign / "model.keras")
    assert np.allclose(exported.predict(x, verbose=0), chosen.predict(x, verbose=0))
    assert len(pd.read_csv(paths.export / "sample_predictions.csv")) == 5


def test_regression_pipeline_searches_when_goal_is_missed(diabetes_search_run):
    _, paths, results = diabetes_search_run
    summary = results["redesign"]
    assert summary["searched"] and summary["trials"] == 2 and summary["stop_reason"] == "trial budget spent"
    assert summary["rounds"] == 1
    trials = pd.read_csv(paths.redesign / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"COMPLETED"} and set(trials["round"]) == {1}
    history = read_json(paths.redesign / "history.json")
    assert len(history) == 1 and history[0]["full_runs"] and "diagnoses" in history[0]
    assert set(history[0]["full_runs"][0]) == {"hyperparameters", "validation", "ranking_loss", "epochs",
                                               "restored_epoch", "cut_short", "status", "reason"}
    assert "## Round 1" in (paths.redesign / "history.md").read_text()
    assert read_json(paths.metrics / "test.json")["goal_met"] is False
    assert (paths.validate / "residuals.png").exists()


def test_a_search_whose_budget_is_spent_before_its_first_trial_still_writes_its_trials_and_the_report(
        diabetes_search_run, tmp_path):
    """The plain candidates' fits count against the search budget: on a 32-class table (leaf_id_flavia)
    they spent all of it, and the empty trials.csv they left stopped the report."""
    from pipeline.search.records import TRIAL_COLUMNS

    _, paths, _ = diabetes_search_run
    shutil.copytree(paths.root, tmp_path / "run")
    copy = Paths(tmp_path / "run")
    tiny = [o for o in TINY if not o.startswith("search.time_budget_s")]
    cfg = make_config("data=diabetes", "goal.threshold=0.99", *tiny, "search.time_budget_s=0.001")
    summary = run_stages(cfg, copy, ["redesign", "validate", "report"])["redesign"]
    assert summary["searched"] and summary["trials"] == 0 and summary["stop_reason"] == "time budget spent"
    trials = pd.read_csv(copy.redesign / "trials.csv")
    assert list(trials.columns) == list(TRIAL_COLUMNS) and trials.empty
    assert "<h3>Trials" not in (copy.reports / "index.html").read_text()


def test_rerunning_the_redesign_stage_resumes_its_search(tmp_path):
    cfg = make_config("data=diabetes", "goal.threshold=0.99", *TINY)
    paths = Paths(tmp_path)
    first = run_stages(cfg, paths, ALL_STAGES[:6])["redesign"]
    saved = sorted(p.name for p in (paths.search_state / "round_1").glob("full_*"))
    again = run_stages(cfg, paths, ["redesign"])["redesign"]
    trials = pd.read_csv(paths.redesign / "trials.csv")
    assert trials["resumed"].all() and len(trials) == first["trials"] == 2
    assert again["validation"] == pytest.approx(first["validation"])
    assert sorted(p.name for p in (paths.search_state / "round_1").glob("full_*")) == saved
    # Other search settings: a fresh search, the old state is dropped.
    changed = make_config("data=diabetes", "goal.threshold=0.99", *TINY, "search.seed=5")
    run_stages(changed, paths, ["redesign"])
    assert not pd.read_csv(paths.redesign / "trials.csv")["resumed"].any()


def test_sequence_npz_runs_the_pipeline_with_the_sequence_families(tmp_path):
    rng = np.random.default_rng(0)
    steps = np.linspace(0, 2 * np.pi, 16)
    y = rng.integers(0, 2, 200)
    # slow waves rising, fast waves falling: easy to tell apart in a few epochs
    x = (np.sin(steps[None, :] * (1 + y[:, None])) + np.where(y[:, None] == 1, -1.0, 1.0) * steps / 6)[..., None]
    x += rng.normal(0, 0.2, x.shape)
    np.savez(tmp_path / "waves.npz", x=x.astype("float32"), y=y, classes=np.array(["slow", "fast"]))
    cfg = make_config("data=npz", f"data.path={tmp_path / 'waves.npz'}", "data.input=sequence", "goal.task=binary",
                      "goal.threshold=0.999", "model.rnn.units=16", "model.transformer.embed_dim=16", *TINY, "train.epochs=20",
                      "search.max_trials=4", "search.trials_per_round=4", "search.tuner=grid",
                      "search.stop_on_goal=false")
    paths = Paths(tmp_path / "run")
    results = run_stages(cfg, paths, ALL_STAGES)
    assert results["design"].family == "tcn" and read_json(paths.prepared / "schema.json")["classes"] == ["slow", "fast"]
    trials = pd.read_csv(paths.redesign / "trials.csv")
    assert set(trials["family"]) <= {"rnn", "tcn", "transformer"} and (trials["status"] == "COMPLETED").all()
    assert read_json(paths.metrics / "test.json")["value"] > 0.7


def test_fail_on_miss_exits_nonzero_with_message(breast_cancer_run, tmp_path):
    _, done, _ = breast_cancer_run
    cfg = make_config("data=breast_cancer", "goal.threshold=1.0", "goal.fail_on_miss=true", *TINY)
    paths = Paths(tmp_path)
    for name in ("prepared", "split", "design", "train", "redesign"):  # what validate reads (dvc.yaml)
        shutil.copytree(done.artifacts / name, paths.artifacts / name)
    paths.metrics.mkdir(parents=True)
    shutil.copy(done.metrics / "train.json", paths.metrics / "train.json")
    value = read_json(done.metrics / "test.json")["value"]
    if value >= 1.0:
        pytest.skip("the tiny model happened to be perfect on the test split")
    with pytest.raises(GoalMissed, match=r"goal missed: test accuracy 0\.\d+ is not >= 1.0 \(goal.fail_on_miss is true\)"):
        run_stages(cfg, paths, ["validate"])
    assert read_json(paths.metrics / "test.json")["goal_met"] is False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_during_the_search_then_rerun_resumes_it(tmp_path, workers):
    """The real thing: SIGKILL the redesign process mid-search (with 2 workers: the chief; its workers
    exit too), run it again, nothing finished is lost."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipeline.config import compose_params, write_params
    from tests.conftest import REPO

    overrides = ["data=diabetes", "goal.threshold=0.99", *TINY, "search.max_trials=6", "search.trials_per_round=6",
                 "search.tuner=random", "search.max_epochs=3", "search.ensemble=false", f"search.workers={workers}"]
    cfg = make_config(*overrides)
    paths = Paths(tmp_path)
    run_stages(cfg, paths, ALL_STAGES[:5])
    write_params(compose_params(overrides, REPO / "conf"), paths.params)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "pipeline", "redesign"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = []
    deadline = time.monotonic() + 300
    while len(finished) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        finished = [p for p in paths.search_state.glob("round_1/search/trial_*/trial.json")
                    if json.loads(p.read_text())["status"] == "COMPLETED"]
    assert process.poll() is None, "the search ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.parent.name for p in finished}
    ends = time.monotonic() + 10
    while time.monotonic() < ends and search_workers_of(paths):
        time.sleep(0.5)
    assert not search_workers_of(paths), "search workers outlived their chief"

    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming the search saved in" in result.stdout
    trials = pd.read_csv(paths.redesign / "trials.csv", dtype={"trial": str})
    assert len(trials) == 6 and trials["trial"].is_unique
    resumed = {f"trial_{t}" for t in trials.loc[trials["resumed"], "trial"].astype(str)}
    assert done_before <= resumed


def search_workers_of(paths) -> list[str]:
    """Running search-worker processes serving this root's search."""
    import os

    state = str(paths.search_state.resolve()).encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"search-worker" in cmdline and state in cmdline:
            found.append(pid)
    return found


def test_export_writes_a_saved_model_that_serves_the_same_outputs(breast_cancer_run):
    tf = pytest.importorskip("tensorflow")
    _, paths, results = breast_cancer_run
    assert results["export"]["saved_model"].endswith("artifacts/export/saved_model")
    served = tf.saved_model.load(str(paths.export / "saved_model"))
    x = np.load(paths.prepared / "data.npz")["x"][:4].astype("float32")
    chosen = keras.saving.load_model(paths.redesign / "model.keras")
    assert np.allclose(served.serve(x).numpy(), chosen.predict(x, verbose=0), atol=1e-5)


def test_chosen_models_learning_curves_are_written(breast_cancer_run):
    from pipeline.designs import Design

    _, paths, _ = breast_cancer_run
    curves = pd.read_csv(paths.redesign / "curves.csv")
    family = Design.load(paths.redesign / "design.json").family
    if family == "linear_model":  # one solve: no curves
        assert curves.empty and list(curves.columns) == ["epoch"]
        return
    if family == "boosted_trees":  # one point per boosting round
        assert {"loss", "val_loss", "goal", "val_goal"} <= set(curves.columns)
    assert list(curves["epoch"]) == list(range(1, len(curves) + 1)) and {"loss", "val_loss"} <= set(curves.columns)


def test_refit_copies_fit_in_half_the_search_budget_or_what_is_left_of_it():
    from types import SimpleNamespace

    cfg = make_config("data=breast_cancer", "search.time_budget_s=100", "train.refit_copies=3")
    splits = SimpleNamespace(train=range(80), validation=range(20))  # a refit sees 1.25x the training rows

    def copies(seconds: float, kept: int = 10, seconds_left: float = 0.0) -> int:
        return refit_copies(cfg, {"seconds": seconds, "restored_epoch": kept, "epochs_run": 10}, splits, seconds_left)

    assert copies(10.0) == 3  # 12.5 s each
    assert copies(20.0) == 2  # 25 s each: two fit in 50 s
    assert copies(20.0, kept=5) == 3  # only the kept epochs are refitted
    assert copies(80.0) == 1  # one at least, however long
    # no search ran (or it ended early): what is left of the budget, when more than half
    assert copies(32.0) == 1 and copies(32.0, seconds_left=95.0) == 2  # 40 s each
    assert copies(20.0, seconds_left=95.0) == 3 and copies(20.0, seconds_left=10.0) == 2
    assert refit_copies(make_config("data=breast_cancer", "train.refit_copies=1"),
                        {"seconds": 0.1, "restored_epoch": 1, "epochs_run": 1}, splits) == 1


def test_the_chosen_design_is_refitted_on_train_and_validation(breast_cancer_run):
    cfg, paths, results = breast_cancer_run
    summary = results["redesign"]
    refit = summary["refit"]
    from pipeline.designs import Design

    chosen = Design.load(paths.redesign / "design.json")

    def singles(design):
        return [leaf for member in design.members for leaf in singles(member)] if design.members else [design]

    networks = [d for d in singles(chosen) if d.family not in PLAIN_FAMILIES]
    assert refit["done"] and refit["rows"] == 369 + 86 and len(refit["epochs"]) == len(networks)
    assert refit["trees"] == next((d.hyperparameters["trees"] for d in singles(chosen) if d.family == trees.FAMILY),
                                  None)
    assert all(1 <= epochs <= cfg.train.epochs for epochs in refit["epochs"])
    exported = keras.saving.load_model(paths.redesign / "model.keras")
    # a single network is refitted as copies with their own seeds, averaged (also as the network part of an
    # average with boosted trees); a searched ensemble's members once each
    members = [layer for layer in exported.layers if layer.name.startswith("member_")]
    assert len(members) == (len(chosen.members) if chosen.members else refit["copies"])
    planned = refit_copies(cfg, read_json(paths.metrics / "train.json"), load_splits(paths)[0])
    if len(networks) == 1:
        assert planned <= refit["copies"] <= cfg.train.refit_copies
    else:
        assert refit["copies"] == min(1, len(networks))  # a searched ensemble: each member once; plain: none
    if refit["copies"] > 1:
        network = members[0] if chosen.members else exported
        copies = [layer for layer in network.layers if layer.name.startswith("member_")]
        first, second = (m.get_weights() for m in copies[:2])
        assert not all(np.allclose(a, b) for a, b in zip(first, second))
        assert f"average of {refit['copies']} copies" in (paths.reports / "index.html").read_text()
    selected = keras.saving.load_model(paths.redesign / "selected.keras")
    x = np.load(paths.prepared / "data.npz")["x"][:20]
    assert not np.allclose(exported.predict(x, verbose=0), selected.predict(x, verbose=0))
    assert "Refitted" in (paths.reports / "index.html").read_text()
    train = read_json(paths.metrics / "train.json")
    assert 1 <= train["restored_epoch"] <= train["epochs_run"] and train["cut_short"] is False
