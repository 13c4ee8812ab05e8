import numpy as np
import pytest

from pipeline import metrics


def test_classification_metrics_from_probabilities():
    y = np.array([0, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    assert metrics.compute("multiclass", "accuracy", y, probs) == pytest.approx(0.75)
    assert metrics.compute("multiclass", "balanced_accuracy", y, probs) == pytest.approx((1 + 1 + 0.5) / 3)
    assert metrics.compute("multiclass", "auc", y, probs) > 0.5


def test_binary_uses_threshold_half():
    y = np.array([0, 1, 1, 0])
    raw = np.array([[0.2], [0.9], [0.4], [0.6]])
    assert metrics.compute("binary", "accuracy", y, raw) == 0.5
    assert metrics.compute("binary", "auc", y, raw) == pytest.approx(0.75)


def test_regression_metrics():
    y = np.array([1.0, 2.0, 3.0])
    pred = np.array([1.0, 2.0, 5.0])
    assert metrics.compute("regression", "rmse", y, pred) == pytest.approx(np.sqrt(4 / 3))
    assert metrics.compute("regression", "mae", y, pred) == pytest.approx(2 / 3)
    assert metrics.compute("regression", "r2", y, pred) == pytest.approx(1 - 4 / 2)


def test_nan_outputs_score_worst():
    assert metrics.compute("binary", "accuracy", np.array([0, 1]), np.array([np.nan, 0.3])) == float("-inf")
    assert metrics.compute("regression", "rmse", np.array([0.0]), np.array([np.nan])) == float("inf")


def test_goal_direction_and_margin():
    assert metrics.goal_met(0.99, 0.98, "accuracy") and not metrics.goal_met(0.97, 0.98, "accuracy")
    assert metrics.goal_met(3.0, 4.0, "rmse") and not metrics.goal_met(5.0, 4.0, "rmse")
    assert metrics.margin(0.99, 0.98, "accuracy") == pytest.approx(0.01)
    assert metrics.margin(3.0, 4.0, "mae") == pytest.approx(1.0)
    assert not metrics.goal_met(float("nan"), 0.5, "auc")


def test_unknown_metric_for_task_raises():
    with pytest.raises(ValueError, match="metric 'rmse' is not defined for task 'binary'"):
        metrics.compute("binary", "rmse", np.array([0]), np.array([0.2]))


def test_goal_margin_asks_for_more_than_the_threshold():
    assert metrics.goal_met(0.992, 0.99, "accuracy") and not metrics.goal_met(0.992, 0.99, "accuracy", margin=0.005)
    assert metrics.goal_met(3.0, 4.0, "rmse", margin=0.5) and not metrics.goal_met(3.8, 4.0, "rmse", margin=0.5)


def test_auto_stop_margin_is_a_standard_error_on_the_validation_split():
    assert metrics.stop_margin("auto", "accuracy", 0.99, 270) == pytest.approx(1.645 * (0.99 * 0.01 / 270) ** 0.5)
    assert metrics.stop_margin("auto", "accuracy", 0.9, 10_000) < metrics.stop_margin("auto", "accuracy", 0.9, 100)
    assert metrics.stop_margin("auto", "r2", 0.5, 100) == 0.0 and metrics.stop_margin(0.01, "r2", 0.5, 100) == 0.01
