"""Each diagnosis fires on a curve that should trigger it, and not on a healthy one."""

import pytest

from pipeline.config import DiagnosisConfig, GoalConfig
from pipeline.designs import DesignSpace
from pipeline.search.diagnosis import RoundPlan, adjust, diagnose, round_diagnoses
from tests.conftest import make_config

GOAL = GoalConfig(task="multiclass", metric="accuracy", threshold=0.9)
SETTINGS = DiagnosisConfig()


def kinds(curves, goal=GOAL):
    return sorted(d.kind for d in diagnose(curves, goal, SETTINGS))


HEALTHY = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.0, 0.7, 0.5, 0.45],
           "goal": [0.6, 0.85, 0.93, 0.95], "val_goal": [0.6, 0.83, 0.92, 0.93]}


def test_healthy_curves_give_no_diagnosis():
    assert kinds(HEALTHY) == []


def test_overfitting_fires_on_a_train_validation_gap():
    curves = {**HEALTHY, "goal": [0.7, 0.95, 0.99, 1.0], "val_goal": [0.6, 0.8, 0.84, 0.83]}
    assert "overfitting" in kinds(curves) and "underfitting" not in kinds(curves)


def test_underfitting_fires_when_train_itself_misses_the_goal():
    curves = {**HEALTHY, "goal": [0.5, 0.6, 0.65, 0.7], "val_goal": [0.5, 0.6, 0.64, 0.69]}
    assert kinds(curves) == ["underfitting"]


def test_the_train_score_in_inference_mode_replaces_the_noisy_running_metric():
    # the running train metric (dropout on) misses the goal; measured like validation it does not
    noisy = {**HEALTHY, "goal": [0.5, 0.6, 0.65, 0.7], "val_goal": [0.6, 0.83, 0.92, 0.93]}
    assert kinds(noisy) == ["underfitting"]
    assert diagnose(noisy, GOAL, SETTINGS, train_score=0.95) == []
    found = diagnose(HEALTHY, GOAL, SETTINGS, train_score=1.0)
    assert [d.kind for d in found] == ["overfitting"] and "train (inference mode) accuracy 1.0000" in found[0].evidence
    found = round_diagnoses(noisy, ["COMPLETED"], GOAL, SETTINGS, train_score=0.5)
    assert [d.kind for d in found] == ["underfitting"] and "0.5000" in found[0].evidence


def test_a_run_with_only_a_validation_curve_is_diagnosed_from_its_train_score():
    # the train side is measured once at the kept weights, not per epoch (metrics Keras lacks have no train curve)
    curves = {k: v for k, v in HEALTHY.items() if k != "goal"}
    assert kinds(curves) == []
    assert [d.kind for d in diagnose(curves, GOAL, SETTINGS, train_score=1.0)] == ["overfitting"]
    assert [d.kind for d in diagnose(curves, GOAL, SETTINGS, train_score=0.8)] == ["underfitting"]
    assert diagnose(curves, GOAL, SETTINGS, train_score=0.95) == []


def test_divergence_fires_on_nan_and_on_exploding_loss():
    assert kinds({**HEALTHY, "loss": [1.0, 2.0, float("nan")]}) == ["divergence"]
    assert kinds({**HEALTHY, "loss": [1.0, 5.0, 40.0, 300.0]}) == ["divergence"]
    assert "divergence" not in kinds({**HEALTHY, "loss": [1.0, 1.5, 0.9, 0.8]})


def test_stalled_fires_when_val_loss_never_improves():
    curves = {**HEALTHY, "val_loss": [1.0, 1.0, 0.999, 1.01]}
    assert "stalled" in kinds(curves)
    assert "stalled" not in kinds({**HEALTHY, "val_loss": [1.0, 1.0]})  # too few epochs to tell


def test_regression_overfitting_uses_a_relative_gap():
    goal = GoalConfig(task="regression", metric="rmse", threshold=60.0)
    curves = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.0, 2.5, 2.4], "goal": [50.0, 40.0, 30.0],
              "val_goal": [55.0, 52.0, 50.0]}
    assert kinds(curves, goal) == ["overfitting"]


def test_many_failed_trials_mean_divergence():
    found = round_diagnoses(HEALTHY, ["FAILED", "FAILED", "COMPLETED"], GOAL, SETTINGS)
    assert [d.kind for d in found] == ["divergence"] and "2 of 3 trials failed" in found[0].evidence
    assert round_diagnoses(HEALTHY, ["FAILED", "COMPLETED", "COMPLETED"], GOAL, SETTINGS) == []


IMAGE_SPACE = DesignSpace.from_config(make_config())  # digits: cnn, resnet, inception; augmentation available
TABLE_SPACE = DesignSpace.from_config(make_config("data=wine"))
PLAN = RoundPlan(IMAGE_SPACE, trial_epochs=10, full_epochs=40)


def diagnosis(kind):
    from pipeline.search.records import Diagnosis

    return [Diagnosis(kind, "test")]


def test_overfitting_adds_regularization_and_turns_augmentation_on():
    plan, changes = adjust(PLAN, diagnosis("overfitting"), {"dropout": 0.2})
    assert plan.space.common.dropout.min == pytest.approx(0.3) and plan.space.common.dropout.max >= 0.5
    assert plan.space.common.l2.choices == [1e-4, 1e-3]
    assert plan.space.augment.choices == [True] and "augmentation on" in " ".join(changes)


def test_overfitting_on_tables_says_there_is_no_augmentation():
    plan, changes = adjust(RoundPlan(TABLE_SPACE, 10, 40), diagnosis("overfitting"), {"dropout": 0.2})
    assert plan.space.augment is None and any(c.startswith("augmentation: none configured") for c in changes)


def test_underfitting_grows_every_family_and_the_epochs():
    plan, changes = adjust(PLAN, diagnosis("underfitting"), {"cnn_blocks": 2})
    before, after = PLAN.space.per_family, plan.space.per_family
    assert after["cnn"].blocks.min == 2 and after["cnn"].blocks.max == before["cnn"].blocks.max + 1
    assert after["resnet"].stages.max == before["resnet"].stages.max + 1
    assert max(after["cnn"].filters.choices) == 2 * max(before["cnn"].filters.choices)
    assert max(after["inception"].filters.choices) == 2 * max(before["inception"].filters.choices)
    assert (plan.trial_epochs, plan.full_epochs) == (20, 60)
    assert plan.space.common.dropout.max == pytest.approx(PLAN.space.common.dropout.max / 2)


def test_divergence_lowers_learning_rates_and_clips():
    plan, changes = adjust(PLAN, diagnosis("divergence"), {})
    assert plan.space.training.learning_rate.max == pytest.approx(PLAN.space.training.learning_rate.max / 10)
    assert plan.space.common.batchnorm.choices == [True] and plan.clipnorm == 1.0


def test_stalled_raises_learning_rates_and_drops_sgd():
    plan, changes = adjust(PLAN, diagnosis("stalled"), {})
    assert plan.space.training.learning_rate.min == pytest.approx(PLAN.space.training.learning_rate.min * 3)
    assert "sgd" not in plan.space.training.optimizer.choices


def test_no_diagnosis_changes_nothing():
    plan, changes = adjust(PLAN, [], {})
    assert plan.space.to_dict() == PLAN.space.to_dict() and changes == []
    assert (plan.trial_epochs, plan.full_epochs, plan.clipnorm) == (10, 40, None)
