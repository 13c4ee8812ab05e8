"""Task scores from raw outputs, and the objective: direction, comparison, margins, ranking."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.objective import Objective, paired_loss_gap
from pipeline.tasks import calibrated_log_loss, calibrated_log_losses, task_named

BINARY, MULTICLASS, REGRESSION = task_named("binary"), task_named("multiclass"), task_named("regression")


def test_classification_metrics_from_probabilities():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    assert MULTICLASS.score("accuracy", y, probs) == pytest.approx(0.75)
    assert MULTICLASS.score("balanced_accuracy", y, probs) == pytest.approx((1 + 1 + 0.5) / 3)
    assert MULTICLASS.score("auc", y, probs) > 0.5


def test_binary_uses_threshold_half():
    y = np.array([0, 1, 1, 0])
    raw = np.array([[0.2], [0.9], [0.4], [0.6]])
    assert BINARY.score("accuracy", y, raw) == 0.5
    assert BINARY.score("auc", y, raw) == pytest.approx(0.75)
    assert BINARY.labels(np.array([0.5])).tolist() == [1]
    assert BINARY.predictions_frame(np.array([0.5]), ["no", "yes"])["prediction"].tolist() == ["yes"]


def test_regression_metrics():
    y = np.array([1.0, 2.0, 3.0])
    pred = np.array([1.0, 2.0, 5.0])
    assert REGRESSION.score("rmse", y, pred) == pytest.approx(np.sqrt(4 / 3))
    assert REGRESSION.score("mae", y, pred) == pytest.approx(2 / 3)
    assert REGRESSION.score("r2", y, pred) == pytest.approx(1 - 4 / 2)


def test_nan_outputs_score_worst():
    assert BINARY.score("accuracy", np.array([0, 1]), np.array([np.nan, 0.3])) == float("-inf")
    assert REGRESSION.score("rmse", np.array([0.0]), np.array([np.nan])) == float("inf")


def test_goal_direction_and_margin():
    assert Objective("accuracy", 0.98).met(0.99) and not Objective("accuracy", 0.98).met(0.97)
    assert Objective("rmse", 4.0).met(3.0) and not Objective("rmse", 4.0).met(5.0)
    assert Objective("accuracy", 0.98).margin(0.99) == pytest.approx(0.01)
    assert Objective("mae", 4.0).margin(3.0) == pytest.approx(1.0)
    assert not Objective("auc", 0.5).met(float("nan"))
    assert Objective("rmse", 4.0).comparison == "<=" and Objective("r2", 0.5).comparison == ">="


def test_unknown_metric_for_task_raises():
    with pytest.raises(ValueError, match="metric 'rmse' is not defined for task 'binary'"):
        BINARY.score("rmse", np.array([0]), np.array([0.2]))


def test_goal_margin_asks_for_more_than_the_threshold():
    assert Objective("accuracy", 0.99).met(0.992) and not Objective("accuracy", 0.99).met(0.992, margin=0.005)
    assert Objective("rmse", 4.0).met(3.0, margin=0.5) and not Objective("rmse", 4.0).met(3.8, margin=0.5)


def test_auto_stop_margin_is_a_standard_error_on_the_validation_split():
    accuracy = Objective("accuracy", 0.99)
    assert accuracy.stop_margin("auto", 270) == pytest.approx(1.645 * (0.99 * 0.01 / 270) ** 0.5)
    assert Objective("accuracy", 0.9).stop_margin("auto", 10_000) < Objective("accuracy", 0.9).stop_margin("auto", 100)
    assert Objective("r2", 0.5).stop_margin("auto", 100) == 0.0 and Objective("r2", 0.5).stop_margin(0.01, 100) == 0.01


def test_within_a_rates_standard_error_the_lower_loss_wins():
    accuracy = Objective("accuracy")
    runs = {"network": (0.924, 0.21), "trees": (0.952, 0.160), "average": (0.9533, 0.165), "broken": (math.nan, 0.0)}

    def best(rows):
        return accuracy.best_within_noise(runs, value=lambda r: runs[r][0], loss=lambda r: runs[r][1], rows=rows)

    assert accuracy.standard_error(0.9533, 750) == pytest.approx((0.9533 * 0.0467 / 750) ** 0.5)
    assert best(750) == "trees"  # 1 row of 750 apart: the lower log loss decides
    assert best(10_000_000) == "average"  # the same gap on ten million rows is no noise
    r2 = Objective("r2")  # no standard error of its own: only equal scores fall back on the loss
    assert r2.standard_error(0.9, 100) == 0.0
    assert r2.best_within_noise(runs, value=lambda r: runs[r][0], loss=lambda r: runs[r][1], rows=750) == "average"
    assert r2.best_within_noise([], value=float, loss=float, rows=10) is None


def test_a_binary_auc_has_the_standard_error_of_hanley_and_mcneil():
    auc = Objective("auc")
    # at 0.5 the formula is the Mann-Whitney statistic's exact variance under no signal
    assert auc.standard_error(0.5, 130, 30) == pytest.approx(((130 + 1) / (12 * 30 * 100)) ** 0.5)
    fewer_positives, more_positives, more_rows = (auc.standard_error(0.8, 1000, 20), auc.standard_error(0.8, 1000, 200),
                                                  auc.standard_error(0.8, 10_000, 2000))
    assert fewer_positives > more_positives > more_rows
    assert auc.standard_error(1.0, 100, 10) == 0.0
    # without the class counts (a multiclass or multilabel AUC), or with one class absent: none
    assert auc.standard_error(0.8, 100) == 0.0 == auc.standard_error(0.8, 100, 0) == auc.standard_error(0.8, 100, 100)


def test_the_auc_standard_error_matches_the_spread_of_auc_over_resampled_validation_sets():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    positives, negatives = 25, 400
    scores = [roc_auc_score(np.r_[np.ones(positives), np.zeros(negatives)],
                            np.r_[rng.normal(1.0, 1.0, positives), rng.normal(0.0, 1.0, negatives)])
              for _ in range(400)]
    expected = Objective("auc").standard_error(float(np.mean(scores)), positives + negatives, positives)
    assert np.std(scores) == pytest.approx(expected, rel=0.15)


def test_within_a_binary_aucs_standard_error_the_lower_loss_wins():
    auc = Objective("auc")
    runs = {"network": (0.7424, 0.2219), "average": (0.7352, 0.2099), "trees": (0.6906, 0.2146)}

    def best(rows, positives):
        return auc.best_within_noise(runs, value=lambda r: runs[r][0], loss=lambda r: runs[r][1], rows=rows,
                                     positives=positives)

    assert best(874, 52) == "average"  # 0.007 apart with 52 positives (one standard error 0.04)
    assert best(87_400, 5_200) == "network"  # the same gap on a hundred times the rows
    assert best(874, None) == "network"  # no class counts: exact ties only


@pytest.mark.parametrize("metric, better, worse", [("accuracy", 0.9, 0.8), ("rmse", 1.0, 2.0), ("r2", 0.5, -1.0)])
def test_better_than_and_best_follow_the_direction(metric, better, worse):
    objective = Objective(metric)
    assert objective.better_than(better, worse) and not objective.better_than(worse, better)
    assert not objective.better_than(math.nan, worse) and objective.better_than(worse, math.nan)
    runs = [{"v": worse, "loss": 0.1}, {"v": better, "loss": 0.9}, {"v": better, "loss": 0.5}, {"v": math.nan}]
    assert objective.best(runs, value=lambda r: r["v"], loss=lambda r: r.get("loss", 9)) is runs[2]
    assert objective.order([worse, math.nan, better]) == [2, 0, 1]
    assert objective.order([worse, math.nan, better], worst_first=True) == [0, 2, 1]
    assert objective.best_index([worse, better, worse]) == 1


def test_lead_is_relative_for_errors_and_absolute_for_scores():
    assert Objective("accuracy").lead(0.95, 0.90) == pytest.approx(0.05)
    assert Objective("rmse").lead(30.0, 50.0) == pytest.approx(0.4)  # train 30 vs validation 50: 40% ahead


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.5, 2.0))
def test_calibrated_log_loss_ignores_the_temperature_and_never_exceeds_the_log_loss(seed, scale):
    """Also row by row: each row's loss at the fitted temperature, lower where the row is right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=60)
    logits = rng.normal(size=(60, 4)) + 2.0 * np.eye(4)[y]
    probabilities = _softmax(logits)
    calibrated = calibrated_log_loss(y, probabilities)
    assert calibrated <= task_named("multiclass").validation_loss(y, probabilities) + 1e-9
    assert calibrated == pytest.approx(calibrated_log_loss(y, _softmax(scale * logits)), abs=1e-4)
    losses = calibrated_log_losses(y, probabilities)
    assert losses.shape == (60,) and np.all(losses > 0) and float(np.mean(losses)) == pytest.approx(calibrated)
    np.testing.assert_allclose(calibrated_log_losses(y, _softmax(scale * logits)), losses, atol=2e-3)
    right = probabilities.argmax(axis=1) == y
    if right.any() and (~right).any():
        assert losses[right].mean() < losses[~right].mean()


def test_ranking_loss_ranks_designs_by_how_they_separate_the_classes_whatever_their_confidence():
    """Label smoothing lowers a design's confidence: plain log loss then prefers a design that
    separates the classes worse; the ranking loss keeps the better one first."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    noise = rng.normal(size=(300, 3))
    better = 3.0 * np.eye(3)[y] + 0.8 * noise  # same rows right, wider margins
    worse = 3.0 * np.eye(3)[y] + 1.2 * noise
    task = task_named("multiclass")
    smoothed_better, sharp_worse = _softmax(0.3 * better), _softmax(3.0 * worse)
    assert task.validation_loss(y, smoothed_better) > task.validation_loss(y, sharp_worse)  # the bias
    assert task.ranking_loss(y, smoothed_better) < task.ranking_loss(y, sharp_worse)
    assert math.isinf(task.ranking_loss(y, np.full((300, 3), np.nan)))


@pytest.mark.parametrize("name, y, raw", [
    ("binary", np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.4])),
    ("multilabel", np.array([[0, 1], [1, 1], [0, 0]]), np.array([[0.1, 0.8], [0.6, 0.7], [0.3, 0.2]])),
])
def test_ranking_loss_of_binary_decisions_is_calibrated_log_loss(name, y, raw):
    task = task_named(name)
    assert task.ranking_loss(y, raw) <= task.validation_loss(y, raw) + 1e-9
    assert task.ranking_loss(y, raw) == pytest.approx(task.ranking_loss(y, 1 / (1 + ((1 - raw) / raw) ** 2)), abs=1e-4)


def test_ranking_loss_of_regression_is_the_mean_squared_error():
    task = task_named("regression")
    assert task.ranking_loss(np.array([1.0, 2.0]), np.array([1.5, 2.0])) == pytest.approx(0.125)


@pytest.mark.parametrize("name, y, raw, expected", [
    ("regression", np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 1.0]), [0.25, 0.0, 9.0]),
    ("binary", np.array([1, 0]), np.array([0.9, 0.9]), None),
    ("multiclass", np.array([0, 2]), np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1]]), None),
    ("multilabel", np.array([[0, 1], [1, 1], [0, 0]]), np.array([[0.1, 0.8], [0.6, 0.7], [0.3, 0.2]]), None),
])
def test_ranking_losses_are_one_per_row_and_average_to_the_ranking_loss(name, y, raw, expected):
    task = task_named(name)
    losses = task.ranking_losses(y, raw)
    assert losses.shape == (len(y),)
    assert float(np.mean(losses)) == pytest.approx(task.ranking_loss(y, raw))
    if expected is not None:
        np.testing.assert_allclose(losses, expected)
    elif name != "multilabel":
        assert losses[0] < losses[1]  # the first row right, the second wrong
    else:  # a row's loss is the mean of its labels' binary losses at one temperature
        per_label = calibrated_log_losses(y.reshape(-1), np.stack([1 - raw.reshape(-1), raw.reshape(-1)], axis=1))
        np.testing.assert_allclose(losses, per_label.reshape(3, 2).mean(axis=1))
    broken = np.full_like(np.asarray(raw, dtype="float64"), np.nan)
    assert np.all(np.isinf(task.ranking_losses(y, broken)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-1.0, 1.0))
def test_the_paired_loss_gap_is_antisymmetric_and_a_constant_shift_has_no_error(seed, shift):
    rng = np.random.default_rng(seed)
    a, b = rng.exponential(size=30), rng.exponential(size=30)
    gap, error = paired_loss_gap(a, b)
    assert gap == pytest.approx(float(np.mean(a - b)))
    assert error == pytest.approx(float(np.std(a - b, ddof=1) / np.sqrt(30)))
    assert paired_loss_gap(b, a) == (pytest.approx(-gap), pytest.approx(error))
    assert paired_loss_gap(a + shift, a) == (pytest.approx(shift), pytest.approx(0.0, abs=1e-9))


def test_the_paired_loss_gaps_error_matches_its_spread_over_resampled_rows_and_is_below_the_unpaired_one():
    """Rows hard for one model are hard for the other: the paired error is the spread of the gap
    over fresh validation sets, much smaller than treating the two losses as independent."""
    rng = np.random.default_rng(0)
    gaps, errors = [], []
    for _ in range(400):
        hardness = rng.exponential(size=200)
        a, b = hardness + rng.normal(0.02, 0.1, 200), hardness + rng.normal(0.0, 0.1, 200)
        gap, error = paired_loss_gap(a, b)
        gaps.append(gap)
        errors.append(error)
    assert np.std(gaps) == pytest.approx(np.mean(errors), rel=0.15)
    assert np.mean(errors) < 0.2 * np.std(hardness) * np.sqrt(2 / 200)
    assert paired_loss_gap([1.0, math.inf], [0.5, 0.5]) == (math.inf, 0.0)
    with pytest.raises(ValueError, match=r"paired losses need the same rows: \(2,\) and \(1,\)"):
        paired_loss_gap([1.0, 2.0], [1.0])
