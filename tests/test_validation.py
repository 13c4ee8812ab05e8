"""Test-split metrics, bootstrap intervals and error analysis."""

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipeline import analysis, metrics
from pipeline.files import read_json
from pipeline.tasks import task_named

BINARY, MULTICLASS, REGRESSION = task_named("binary"), task_named("multiclass"), task_named("regression")


def test_classification_report_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    raw = rng.dirichlet([1, 1, 1], 200)
    raw[np.arange(200), y] += 0.5
    raw /= raw.sum(axis=1, keepdims=True)
    report = MULTICLASS.report(y, raw, ["a", "b", "c"])
    labels = raw.argmax(axis=1)
    assert report["weighted_f1"] == pytest.approx(skm.f1_score(y, labels, average="weighted"))
    assert report["log_loss"] == pytest.approx(skm.log_loss(y, raw), rel=1e-4)
    assert report["roc_auc"] == pytest.approx(skm.roc_auc_score(y, raw, multi_class="ovr"))
    assert report["per_class"]["b"]["support"] == int((y == 1).sum())
    assert report["per_class"]["c"]["recall"] == pytest.approx(skm.recall_score(y, labels, average=None)[2])


def test_binary_and_regression_reports():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    raw = np.array([0.1, 0.8, 0.6, 0.4, 0.3, 0.2, 0.9, 0.7])
    report = BINARY.report(y, raw, ["no", "yes"])
    assert report["accuracy"] == pytest.approx(7 / 8) and report["per_class"]["yes"]["recall"] == pytest.approx(4 / 5)
    values = np.array([1.0, 2.0, 3.0, 4.0])
    reg = REGRESSION.report(values, values + np.array([0.5, -0.5, 0.5, 1.5]), [])
    assert reg["mae"] == pytest.approx(0.75) and reg["residuals"]["max_abs"] == pytest.approx(1.5)
    assert reg["residuals"]["mean"] == pytest.approx(0.5)


def test_bootstrap_interval_holds_the_value_and_narrows_with_more_rows():
    rng = np.random.default_rng(1)

    def width(n):
        y = rng.integers(0, 2, n)
        raw = np.where(rng.random(n) < 0.9, y, 1 - y).astype(float)
        low, high = metrics.bootstrap_interval(BINARY, "accuracy", y, raw, rounds=300)
        assert low <= BINARY.score("accuracy", y, raw) <= high
        return high - low

    assert width(2000) < width(100) / 2


def test_confused_pairs_worst_examples_and_slices():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    raw = np.eye(3)[[0, 1, 1, 1, 1, 1, 2, 2, 2, 2]] * 0.9 + 0.1 / 3
    labels = raw.argmax(axis=1)
    assert analysis.confused_pairs(y, labels, ["a", "b", "c"])[0] == {"true": "c", "predicted": "b", "count": 2}
    scores = MULTICLASS.example_scores(y, raw)
    assert set(scores.sort_values("error", ascending=False).index[:3]) == {1, 4, 5}
    table = pd.DataFrame({"city": ["x"] * 5 + ["y"] * 5, "age": np.arange(10.0)})
    slices = analysis.slice_metrics(MULTICLASS, "accuracy", y, raw, ["a", "b", "c"], table)
    assert slices.iloc[0]["score"] == slices["score"].min()
    assert {"class", "category"} <= set(slices["slice"])
    city_y = slices[(slices["column"] == "city") & (slices["value"] == "y")]["score"].item()
    assert city_y == pytest.approx(4 / 5)  # rows 5..9: one of five wrong


def test_validate_writes_interval_metrics_and_error_analysis(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    test = read_json(paths.metrics / "test.json")
    assert test["interval_95"]["low"] <= test["value"] <= test["interval_95"]["high"]
    assert set(test["all"]) >= {"accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss",
                                "per_class"}
    assert set(test["all"]["per_class"]) == {"malignant", "benign"}
    assert test["analysis"]["weakest_slices"] and "expected_calibration_error" in test["analysis"]["calibration"]
    worst = pd.read_csv(paths.validate / "worst_examples.csv")
    assert len(worst) == 20 and {"true", "predicted", "confidence", "mean radius"} <= set(worst.columns)
    assert worst["p_true"].is_monotonic_increasing
    for picture in ("reliability.png", "confusion_normalised.png", "roc_pr.png"):
        assert (paths.validate / picture).stat().st_size > 1000
    roc = pd.read_csv(paths.validate / "roc.csv")
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(test["all"]["roc_auc"], abs=1e-6)
    assert set(pd.read_csv(paths.validate / "pr.csv").columns) == {"recall", "precision"}


def test_roc_and_precision_recall_points_agree_with_scikit_learn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from pipeline.plots import roc_pr_curves

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300) + np.eye(3)[y] * 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    roc, pr = roc_pr_curves(y, probs)
    onehot = np.eye(3)[y]
    assert roc["auc"] == pytest.approx(roc_auc_score(onehot, probs, average="micro"))
    assert pr["average_precision"] == pytest.approx(average_precision_score(onehot, probs, average="micro"))
    binary = (y == 1).astype(int)
    roc, _ = roc_pr_curves(binary, probs[:, 1:2])
    assert roc["auc"] == pytest.approx(roc_auc_score(binary, probs[:, 1]))


def test_the_leaderboard_puts_the_network_beside_plain_baselines_on_the_same_rows(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    test = read_json(paths.metrics / "test.json")
    board = {entry["name"]: entry for entry in test["leaderboard"]}
    assert {"linear", "gradient boosting", "always the training prior"} <= set(board)
    network = next(e for e in test["leaderboard"] if e["name"].startswith("exported model"))
    assert network["test"] == test["value"] and network["size_kb"] > 0 and network["predict_ms_per_row"] > 0
    # best test score first; the prior predicts one class: its accuracy is the test share of that class
    scores = [e["test"] for e in test["leaderboard"]]
    assert scores == sorted(scores, reverse=True)
    majority = max(c["support"] for c in test["all"]["per_class"].values()) / test["test_rows"]
    assert board["always the training prior"]["test"] == pytest.approx(majority)
    assert board["linear"]["test"] > 0.9 and board["linear"]["fit_seconds"] >= 0
    assert pd.read_csv(paths.validate / "leaderboard.csv")["name"].tolist() == [e["name"] for e in test["leaderboard"]]


def test_the_leaderboard_scores_the_searchs_other_designs_on_test(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    assert read_json(paths.redesign / "summary.json")["searched"]
    confirmed = read_json(paths.redesign / "confirmed" / "index.json")
    assert confirmed, "a search with a full-data run and an ensemble leaves designs that were not chosen"
    board = {entry["name"]: entry for entry in read_json(paths.metrics / "test.json")["leaderboard"]}
    for entry in confirmed:
        row = board[entry["name"]]
        assert row["name"].startswith("searched #") and row["validation"] == entry["validation"]
        assert 0.0 <= row["test"] <= 1.0 and row["size_kb"] > 0


def test_multilabel_run_validates_and_predicts(tmp_path):
    from pipeline.paths import Paths
    from pipeline.predict import predict_file
    from tests.conftest import ALL_STAGES, TINY, make_config, run_stages

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    frame["sunny"] = (frame["a"] > 0).astype(int)
    frame["windy"] = (frame["b"] + frame["c"] > 0).astype(int)
    frame.to_csv(tmp_path / "weather.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 'weather.csv'}", "data.target=[sunny,windy]",
                      "goal.task=multilabel", "goal.metric=macro_f1", "goal.threshold=0.5", *TINY)
    paths = Paths(tmp_path / "run")
    results = run_stages(cfg, paths, ALL_STAGES)
    test = results["validate"]
    assert set(test["all"]["per_class"]) == {"sunny", "windy"} and "balanced_accuracy" not in test["all"]
    assert len(pd.read_csv(paths.validate / "worst_examples.csv")) == 20
    predicted = predict_file(paths.export / "model.keras", paths.export / "sample_input.csv")
    assert {"prob_sunny", "prob_windy"} <= set(predicted.columns)


def test_calibration_bins_hold_about_the_same_number_of_rows(tmp_path):
    from pipeline.plots import reliability_png

    rng = np.random.default_rng(0)
    confidence = 1 - rng.beta(1, 20, size=1000)  # most near 1, as a confident classifier's are
    correct = (rng.random(1000) < confidence).astype(float)  # calibrated by construction
    result = reliability_png(confidence, correct, tmp_path / "r.png", "t")
    rows = [b["rows"] for b in result["bins"]]
    assert sum(rows) == 1000 and min(rows) >= 90 and len(rows) == 10
    assert result["expected_calibration_error"] < 0.05 and (tmp_path / "r.png").stat().st_size > 0
    assert all(abs(b["accuracy"] - b["confidence"]) < 0.1 for b in result["bins"])
