"""The redesign search: seeded by the initial design, stopped by goal, time or trials."""

import numpy as np
import pytest

from pipeline.data import load_dataset
from pipeline.designs import initial_design, preprocessing_stats
from pipeline.search import run_search
from pipeline.stages.split import split_indices
from tests.conftest import TINY, make_config


@pytest.fixture(scope="module")
def wine():
    cfg = make_config("data=wine", *TINY)
    ds = load_dataset(cfg.data, "multiclass")
    idx = split_indices(ds.y, 0.2, 0.2, 0, True)
    splits = {n: (ds.x[i], ds.y[i]) for n, i in idx.items()}
    design = initial_design(cfg)
    design["preprocessing"] = preprocessing_stats(*splits["train"], ds.schema)
    return ds.schema, splits, design


def search(wine, tmp_path, *overrides):
    schema, splits, design = wine
    cfg = make_config("data=wine", *TINY, *overrides)
    return run_search(cfg, schema, splits, design, tmp_path)


def test_first_trial_is_the_initial_design(wine, tmp_path):
    result = search(wine, tmp_path, "search.tuner=random", "search.max_trials=1")
    hp = result.trials[0].hyperparameters
    assert hp["family"] == "mlp" and hp["mlp_layers"] == 2 and hp["mlp_units"] == 128
    assert hp["optimizer"] == "adam" and hp["learning_rate"] == pytest.approx(0.002)


def test_stops_as_soon_as_the_goal_is_met(wine, tmp_path):
    result = search(wine, tmp_path, "goal.threshold=0.3", "search.max_trials=5", "search.tuner=random")
    assert result.stop_reason == "goal met on validation" and len(result.trials) == 1


def test_keeps_going_to_the_trial_budget_when_told(wine, tmp_path):
    result = search(wine, tmp_path, "goal.threshold=0.3", "search.max_trials=3", "search.stop_on_goal=false",
                    "search.tuner=random")
    assert result.stop_reason == "trial budget spent" and len(result.trials) == 3


def test_time_budget_ends_the_search(wine, tmp_path):
    result = search(wine, tmp_path, "goal.threshold=1.0", "search.max_trials=50", "search.time_budget_s=0.5",
                    "search.max_epochs=3")
    assert result.stop_reason == "time budget spent" and len(result.trials) == 1


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian", "grid"])
def test_every_tuner_runs(wine, tmp_path, tuner):
    result = search(wine, tmp_path, f"search.tuner={tuner}", "goal.threshold=1.0", "search.max_trials=2")
    assert 1 <= len(result.trials) <= 2 and result.best_score is not None
    assert np.isfinite(result.best_score)


def test_a_diverging_trial_is_failed_and_the_search_goes_on(wine, tmp_path):
    # An absurd learning rate makes every trial's loss overflow to inf/NaN.
    result = search(wine, tmp_path, "search.tuner=random", "search.max_trials=2", "goal.threshold=1.0",
                    "search.space.optimizer=[sgd]", "train.optimizer=sgd",
                    "search.space.learning_rate={min: 1e30, max: 1e30, log: true}")
    assert [t.status for t in result.trials] == ["FAILED", "FAILED"]
    assert all("training diverged: loss not finite at epoch" in t.message for t in result.trials)
    assert result.best_hyperparameters is None and result.stop_reason == "trial budget spent"
