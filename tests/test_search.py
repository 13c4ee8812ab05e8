"""The redesign search: one tuner round (seeded, stopped by goal, time or trials; failed trials)
and the rounds loop (subset first, then all data; goal-stop; shared budgets)."""

import time

import numpy as np
import pytest

from pipeline.config import SPLIT_KINDS
from pipeline.data import load_dataset
from pipeline.designs import DesignSpace, initial_design, preprocessing_stats
from pipeline.prepared import Rows, Splits, subsample
from pipeline.search.rounds import RedesignLoop
from pipeline.search.space import DesignHyperModel
from pipeline.search.tuner import run_tuner
from pipeline.splitting import split_indices
from tests.conftest import TINY, make_config


@pytest.fixture(scope="module")
def wine():
    cfg = make_config("data=wine", *TINY)
    ds = load_dataset(cfg.data, "multiclass")
    idx = split_indices(ds.y, SPLIT_KINDS["stratified"](validation=0.2, test=0.2, seed=0))
    splits = Splits(**{n: Rows(ds.x[i], ds.y[i]) for n, i in idx.items()})
    design = initial_design(cfg)
    design.preprocessing = preprocessing_stats(splits.train.x, splits.train.y, ds.schema)
    return ds.schema, splits, design


def tune(wine, tmp_path, *overrides, max_trials=2, budget_s=120.0, on_trial_end=None, start_at_defaults=True):
    schema, splits, trained = wine
    cfg = make_config("data=wine", *TINY, *overrides)
    design = initial_design(cfg)
    hypermodel = DesignHyperModel(cfg, schema, trained.preprocessing, DesignSpace.from_config(cfg),
                                  design.values(), cfg.search.max_epochs, len(splits.train))
    return run_tuner(cfg, hypermodel, splits.train, splits.validation, tmp_path, max_trials=max_trials,
                     deadline=time.monotonic() + budget_s, seed=cfg.search.seed, on_trial_end=on_trial_end,
                     start_at_defaults=start_at_defaults)


def test_first_trial_is_the_initial_design(wine, tmp_path):
    result = tune(wine, tmp_path, "search.tuner=random", max_trials=1)
    hp = result.trials[0].hyperparameters
    assert hp["family"] == "mlp" and hp["mlp_layers"] == 2 and hp["mlp_units"] == 128 and hp["dropout"] == 0.3
    assert hp["optimizer"] == "adam" and hp["learning_rate"] == pytest.approx(0.002)


def test_a_round_stops_as_soon_as_the_goal_is_met(wine, tmp_path):
    result = tune(wine, tmp_path, "goal.threshold=0.3", "search.tuner=random", max_trials=5)
    assert result.stop_reason == "goal met on validation" and len(result.trials) == 1


def test_keeps_going_to_the_trial_budget_when_told(wine, tmp_path):
    result = tune(wine, tmp_path, "goal.threshold=0.3", "search.stop_on_goal=false", "search.tuner=random",
                  max_trials=3)
    assert result.stop_reason == "trial budget spent" and len(result.trials) == 3


def test_time_budget_ends_a_round(wine, tmp_path):
    result = tune(wine, tmp_path, "goal.threshold=1.0", "search.max_epochs=3", max_trials=50, budget_s=0.5)
    assert result.stop_reason == "time budget spent" and len(result.trials) == 1


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian", "grid"])
def test_every_tuner_runs(wine, tmp_path, tuner):
    result = tune(wine, tmp_path, f"search.tuner={tuner}", "goal.threshold=1.0")
    assert 1 <= len(result.trials) <= 2 and result.best
    assert all(np.isfinite(t.score) for t in result.trials if t.status == "COMPLETED")


def test_a_diverging_trial_is_failed_and_the_search_goes_on(wine, tmp_path):
    # Learning rates up to 1e30 make the (log-uniformly) sampled trials' loss overflow to inf/NaN; the seeded
    # first trial keeps the initial design's sane rate and completes.
    result = tune(wine, tmp_path, "search.tuner=random", "goal.threshold=1.0", "search.stop_on_goal=false",
                  "train.optimizer=sgd", "train.learning_rate={default: 0.002, min: 0.002, max: 1e30, log: true}",
                  max_trials=4)
    statuses = [t.status for t in result.trials]
    assert len(statuses) == 4 and statuses[0] == "COMPLETED"
    huge = [t for t in result.trials if t.hyperparameters["learning_rate"] > 1e6]
    assert huge and all(t.status == "FAILED" and "training diverged: loss not finite at epoch" in t.message
                        for t in huge)
    assert result.stop_reason == "trial budget spent"
    assert result.best and result.best[0][0].values["learning_rate"] <= 1e6


@pytest.mark.slow  # about 40 s: .ci/run runs it
def test_same_seed_gives_the_same_trials_and_another_seed_does_not(wine, tmp_path):
    def sequence(seed, where):
        result = tune(wine, where, "search.tuner=random", "goal.threshold=1.0", "search.stop_on_goal=false",
                      f"search.seed={seed}",
                      "search.max_epochs=1", max_trials=4)
        return [t.hyperparameters for t in result.trials]

    first = sequence(7, tmp_path / "a")
    assert sequence(7, tmp_path / "b") == first
    assert sequence(8, tmp_path / "c") != first


def test_every_family_in_the_space_can_be_searched(wine, tmp_path):
    result = tune(wine, tmp_path, "search.tuner=grid", "goal.threshold=1.0", "model.families=[mlp,transformer]",
                  "model.transformer.blocks=1", "model.transformer.embed_dim=16", "search.max_epochs=1",
                  "model.mlp.units=32", "model.mlp.layers=1", "model.common.dropout=0.1", "model.common.batchnorm=false",
                  "model.common.l2=0.0", "model.common.activation=relu", "model.common.initializer=he_normal",
                  "train.optimizer=adam", "train.batch_size=32", "train.learning_rate=0.002", "train.label_smoothing=0",
                  "model.transformer.heads=2", "model.transformer.ff_units=32", max_trials=6)
    assert {t.hyperparameters["family"] for t in result.trials} == {"mlp", "transformer"}
    assert all(t.status == "COMPLETED" for t in result.trials)


class Interrupt(Exception):
    pass


def test_an_interrupted_search_resumes_without_losing_or_rerunning_a_trial(wine, tmp_path):
    args = ("search.tuner=random", "goal.threshold=1.0", "search.stop_on_goal=false", "search.max_epochs=1")
    seen = []

    def stop_after_two(record):
        seen.append(record.trial_id)
        if len(seen) == 2:
            raise Interrupt  # like Ctrl-C between trials: the tuner has saved both

    with pytest.raises(Interrupt):
        tune(wine, tmp_path, *args, max_trials=4, on_trial_end=stop_after_two)
    rerun = []
    result = tune(wine, tmp_path, *args, max_trials=4, on_trial_end=lambda r: rerun.append(r.trial_id))
    assert [t.trial_id for t in result.trials if t.resumed] == seen
    assert len(rerun) == 2 and not set(rerun) & set(seen) and len(result.trials) == 4
    fresh = tune(wine, tmp_path / "fresh", *args, max_trials=4)
    assert [t.hyperparameters for t in result.trials] == [t.hyperparameters for t in fresh.trials]


def test_subsample_is_seeded_stratified_and_sized():
    rows = Rows(np.arange(100)[:, None], np.array([0] * 80 + [1] * 20))
    sample = subsample(rows, 0.25, 3, True)
    assert len(sample) == 25 and sample.y.sum() == 5
    assert (subsample(rows, 0.25, 3, True).x == sample.x).all()


def rounds(wine, tmp_path, *overrides):
    schema, splits, design = wine
    cfg = make_config("data=wine", *TINY, *overrides)
    return RedesignLoop(cfg, schema, splits, design, tmp_path, log=lambda *_: None).run()


def test_rounds_search_a_subset_then_train_the_best_on_all_data(wine, tmp_path):
    outcome = rounds(wine, tmp_path, "goal.threshold=1.0", "search.stop_on_goal=false", "search.rounds=2",
                     "search.trials_per_round=2",
                     "search.max_trials=4", "search.top_k=1", "search.subset_fraction=0.5", "search.tuner=random")
    assert [t["round"] for t in outcome.trials] == [1, 1, 2, 2]
    assert all(t["data_fraction"] == pytest.approx(0.5, abs=0.01) for t in outcome.trials)
    singles = [c for c in outcome.candidates if not c.design.is_ensemble]
    ensembles = [c for c in outcome.candidates if c.design.is_ensemble]
    assert len(singles) == 2 and [h.round for h in outcome.history] == [1, 2]
    # From round 2 on there are two full-data runs to average; the ensemble is scored like a design.
    assert len(ensembles) == 1 and ensembles[0].round == 2 and len(ensembles[0].design.members) == 2
    _, splits, _ = wine
    averaged = np.mean([c.model.predict(splits.validation.x, verbose=0) for c in singles], axis=0)
    assert ensembles[0].validation == pytest.approx(np.mean(averaged.argmax(1) == splits.validation.y))
    assert outcome.stop_reason in ("all rounds done", "trial budget spent")
    first = outcome.history[0]
    assert first.full_runs and first.full_runs[0].validation == singles[0].validation


def test_goal_stop_ends_the_loop_after_the_first_round(wine, tmp_path):
    outcome = rounds(wine, tmp_path, "goal.threshold=0.3", "search.goal_margin=0", "search.rounds=3",
                     "search.trials_per_round=3", "search.max_trials=9", "search.tuner=random")
    assert outcome.stop_reason == "goal met on validation"
    assert len(outcome.history) == 1 and len(outcome.trials) == 1


def test_time_budget_is_shared_by_all_rounds(wine, tmp_path):
    started = time.monotonic()
    outcome = rounds(wine, tmp_path, "goal.threshold=1.0", "search.rounds=5", "search.trials_per_round=50",
                     "search.max_trials=200", "search.time_budget_s=3", "search.max_epochs=50",
                     "search.tuner=random")
    assert outcome.stop_reason == "time budget spent"
    assert time.monotonic() - started < 3 + 15  # the trial and full training running at the deadline finish their epoch


def test_without_default_seeding_the_first_trial_is_the_oracles_own_draw(wine, tmp_path):
    seeded = tune(wine, tmp_path / "a", "search.tuner=random", max_trials=1).trials[0].hyperparameters
    drawn = tune(wine, tmp_path / "b", "search.tuner=random", max_trials=1, start_at_defaults=False)
    assert drawn.trials[0].hyperparameters != seeded


def test_the_tuner_uses_only_keras_tuners_public_api():
    from tests.conftest import REPO

    for path in (REPO / "pipeline").rglob("*.py"):
        text = path.read_text()
        assert "keras_tuner.src" not in text and "_random_values" not in text, path


def test_rank_correlation_of_subset_and_full_data_scores():
    from pipeline.search.rounds import rank_correlation

    assert rank_correlation([(0.5, 0.7), (0.6, 0.8), (0.7, 0.9)]) == pytest.approx(1.0)
    assert rank_correlation([(0.5, 0.9), (0.6, 0.8), (0.7, 0.7)]) == pytest.approx(-1.0)
    assert rank_correlation([(0.5, 0.7), (0.6, 0.8)]) is None  # too few designs to rank
    assert rank_correlation([(0.5, 0.7), (0.5, 0.8), (0.5, 0.9)]) is None  # no spread in the subset scores


def test_rounds_record_the_search_fidelity(wine, tmp_path):
    outcome = rounds(wine, tmp_path, "goal.threshold=1.0", "search.stop_on_goal=false", "search.rounds=1",
                     "search.trials_per_round=4", "search.max_trials=4", "search.top_k=3", "search.tuner=random",
                     "search.ensemble=false")
    record = outcome.history[0]
    confirmed = [c for c in outcome.candidates if c.subset_score is not None]
    assert record.fidelity_designs == len(confirmed) == 3  # no trained starting design given: the top 3 alone
    scores = sorted(t["score"] for t in outcome.trials if t["status"] == "COMPLETED")[-3:]
    assert sorted(c.subset_score for c in confirmed) == pytest.approx(scores)
    assert record.fidelity == outcome.fidelity


def test_a_diverged_or_useless_full_data_run_is_failed_and_never_chosen(wine, tmp_path):
    import math

    from pipeline.search.rounds import Candidate

    schema, splits, design = wine
    cfg = make_config("data=wine", *TINY, "goal.threshold=1.0")
    loop = RedesignLoop(cfg, schema, splits, design, tmp_path, log=lambda *_: None)
    # three classes, the majority about 40%: always predicting it is the floor
    assert 0.3 < loop.floor < 0.5
    diverged = Candidate(1, design, 0.9, {"loss": [1.0, math.nan]}, model=None)
    useless = Candidate(1, design, loop.floor, {"loss": [1.0, 0.9]}, model=None)
    healthy = Candidate(1, design, 0.9, {"loss": [1.0, 0.5]}, model=None)
    assert "training diverged: loss not finite at epoch 2" in loop.failure(diverged)
    assert "no better than always predicting the training prior" in loop.failure(useless)
    assert loop.failure(healthy) is None
