"""The finalists cross-validated: folds of train + validation (every row held out once, stratified
where every class can be), fold scores from real fits, the time check, and the redesign stage's
choice between the trained initial design and the search's (kept, replaced, or not compared, and why)."""

import dataclasses
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import SPLIT_KINDS
from pipeline.models import linear
from pipeline.prepared import Rows, Splits
from pipeline.search.finalists import cross_validate, fold_indices
from tests.conftest import make_config
from tests.test_trees import table


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=12, max_size=80), st.integers(2, 5), st.booleans())
def test_every_row_is_held_out_once_and_trained_on_in_the_other_folds(labels, folds, stratify):
    y = np.array(labels)
    rows = Rows(np.zeros((len(y), 1)), y)
    pairs = fold_indices(rows, folds, seed=0, stratify=stratify)
    assert len(pairs) == folds
    held = np.concatenate([h for _, h in pairs])
    assert sorted(held.tolist()) == list(range(len(y)))
    for train, out in pairs:
        assert not set(train) & set(out) and len(train) + len(out) == len(y)
    counts = np.unique(y, return_counts=True)[1]
    if stratify and counts.min() >= folds:  # each class spread over the folds as evenly as it can be
        for label, count in zip(*np.unique(y, return_counts=True)):
            per_fold = [int(np.sum(y[out] == label)) for _, out in pairs]
            assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == count


def test_fold_scores_come_from_fits_on_the_other_folds():
    schema, x, y = table(450, "binary")
    rows = Rows(x, y)
    goal = make_config("data=breast_cancer").goal
    seen = []

    def fit(finalist, fold, part):
        seen.append((finalist, fold, len(part)))
        if finalist == "diverges":
            return None
        fitted = linear.fit_linear(schema, part, 0)
        return fitted.model if finalist == "linear" else constant_model(schema, part)

    result = cross_validate(["linear", "prior", "diverges"], fit, rows, goal, 3, 0, time.monotonic() + 600, 1.0)
    assert result.stopped is None and result.folds == 3
    fitted, prior, diverged = result.scores
    assert diverged is None and [(fold, n) for f, fold, n in seen if f == "diverges"] == [(0, 300)]  # not again
    assert [fold for f, fold, _ in seen if f == "linear"] == [0, 1, 2] and all(n == 300 for *_, n in seen)
    assert len(fitted.values) == len(prior.values) == 3
    assert fitted.value > 0.8 and prior.value < 0.7 and fitted.loss < prior.loss


def constant_model(schema, part):
    """A Keras model that outputs the training rows' share of positives whatever it reads."""
    import keras

    inputs = {"numeric": keras.Input((3,), name="numeric"),
              "categorical_plan": keras.Input((1,), name="categorical_plan")}
    share = float(np.mean(part.y))
    output = keras.layers.Lambda(lambda t: keras.ops.zeros_like(t[:, :1]) + share)(inputs["numeric"])
    return keras.Model(inputs, output)


def test_folds_that_would_not_end_in_time_are_not_started():
    schema, x, y = table(90, "binary")
    calls = []
    result = cross_validate(["a", "b"], lambda f, fold, part: calls.append(f), Rows(x, y),
                            make_config("data=breast_cancer").goal, 3, 0, deadline=time.monotonic() + 10,
                            first_fold_s=6.0)
    assert calls == [] and result.scores == ()
    assert result.stopped.startswith("3 fold(s) of about 6 s each would not end in the ")


def test_group_and_time_splits_keep_rows_apart_that_folds_would_mix():
    task = make_config("data=breast_cancer").goal.kind
    assert SPLIT_KINDS["random"].exchangeable and SPLIT_KINDS["stratified"].exchangeable
    assert not SPLIT_KINDS["group"].exchangeable and not SPLIT_KINDS["time"].exchangeable
    assert SPLIT_KINDS["auto"]().concrete(task, windows=False).exchangeable
    assert not SPLIT_KINDS["auto"]().concrete(task, windows=True).exchangeable


@pytest.fixture(scope="module")
def finalists():
    """(config, loop, a trained mlp, the same mlp at a learning rate too small to learn, the train
    stage's record) on a 600-row binary table: 400 training rows, 200 validation."""
    from pipeline.designs import initial_design, preprocessing_stats
    from pipeline.search.rounds import Candidate, RedesignLoop

    schema, x, y = table(600, "binary")
    parts = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 400), slice(400, 600))]
    splits = Splits(parts[0], parts[1], parts[1])
    cfg = make_config("data=breast_cancer", "train.verbose=0")
    design = dataclasses.replace(initial_design(cfg, "tabular", train_rows=400),
                                 preprocessing=preprocessing_stats(parts[0].x, parts[0].y, schema))
    learns = Candidate(0, design, 0.9, {}, None, 0.3, restored_epoch=8, phase_epochs=(8,))
    stuck = dataclasses.replace(design, hyperparameters={**design.hyperparameters, "learning_rate": 1e-7})
    does_not = Candidate(1, stuck, 0.95, {}, None, 0.2, restored_epoch=8, phase_epochs=(8,))
    trained = {"seconds": 2.0, "restored_epoch": 8, "epochs_run": 10}
    return cfg, RedesignLoop(cfg, schema, splits, design, None), learns, does_not, trained


def test_cross_validation_keeps_the_trained_design_the_search_only_seemed_to_beat(finalists, capsys):
    from pipeline.stages.redesign import finalists_cross_validated

    cfg, loop, learns, does_not, trained = finalists
    kept, record = finalists_cross_validated(cfg, loop, learns, does_not, trained, time.monotonic())
    assert kept is learns and record["done"] and record["chosen"] == "trained"
    assert record["folds"] == 3 and record["rows"] == 600 and len(record["scores"]["search"]["folds"]) == 3
    assert record["scores"]["trained"]["value"] > record["scores"]["search"]["value"]
    out = capsys.readouterr().out
    assert "redesign: 3-fold cross-validation on train + validation (600 rows, " in out
    assert out.rstrip().endswith(": keeps the trained initial design")



def test_cross_validation_keeps_the_search_s_choice_when_it_is_better(finalists, capsys):
    from pipeline.stages.redesign import finalists_cross_validated

    cfg, loop, learns, does_not, trained = finalists
    kept, record = finalists_cross_validated(cfg, loop, does_not, learns, trained, time.monotonic())
    assert kept is learns and record["chosen"] == "search"
    assert capsys.readouterr().out.rstrip().endswith(": keeps the search's mlp design")


def test_no_cross_validation_when_off_or_out_of_time_or_rows_are_kept_apart(finalists, capsys):
    from pipeline.config.splits import TimeSplit
    from pipeline.stages.redesign import finalists_cross_validated

    cfg, loop, learns, does_not, trained = finalists
    off = cfg.model_copy(update={"search": cfg.search.model_copy(update={"finalist_folds": 0})})
    assert finalists_cross_validated(off, loop, learns, does_not, trained, time.monotonic()) == (
        does_not, {"done": False, "reason": "search.finalist_folds is 0"})
    ordered = cfg.model_copy(update={"split": TimeSplit(column="t")})
    assert finalists_cross_validated(ordered, loop, learns, does_not, trained, time.monotonic()) == (
        does_not, {"done": False, "reason": "a time split keeps rows apart: shuffled folds would mix them"})
    spent = time.monotonic() - cfg.search.time_budget_s
    kept, record = finalists_cross_validated(cfg, loop, learns, does_not, trained, spent)
    assert kept is does_not and not record["done"] and "would not end in the 0 s left" in record["reason"]
    assert "redesign: no cross-validation of the search's choice and the trained initial design: " in \
        capsys.readouterr().out


def test_one_finalist_fold_is_refused():
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError) as info:
        make_config("search.finalist_folds=1")
    assert ("`search.finalist_folds`: got 1; 0 (off) or 2 to 10 folds (one fold leaves no rows to score on)"
            in str(info.value))


def test_after_a_cross_validation_the_refit_takes_what_is_left_of_the_budget():
    from pipeline.stages.redesign import refit_copies, refit_reserve

    rows = [Rows(np.zeros((n, 2)), np.zeros(n)) for n in (400, 200)]
    splits = Splits(rows[0], rows[1], rows[1])
    trained = {"seconds": 4.0, "restored_epoch": 10, "epochs_run": 10}  # one refit on 600 rows: about 6 s
    cfg = make_config("data=breast_cancer")
    # the search leaves the refit's copies; the cross-validation takes what the search did not use
    assert refit_copies(cfg, trained, splits) == 3 and refit_reserve(cfg, trained, splits) == pytest.approx(18.0)
    # after a cross-validation the refit has what is left (at least one copy), not half the budget
    assert refit_copies(cfg, trained, splits, seconds_left=10.0, share=0.0) == 1
    assert refit_copies(cfg, trained, splits, seconds_left=13.0, share=0.0) == 2
    assert refit_copies(cfg, trained, splits, seconds_left=10.0) == 3


def test_the_report_says_how_the_finalists_fared_or_why_they_were_not_compared(tmp_path):
    from pipeline.files import write_json
    from pipeline.paths import Paths
    from pipeline.stages.report import redesign_section

    paths = Paths(tmp_path)
    paths.redesign.mkdir(parents=True)
    (paths.redesign / "curves.csv").write_text("epoch\n")  # (no curves: a note instead)
    summary = {"chosen": "trained", "reason": "r", "trained_validation": 0.99, "validation": 0.99, "curves": "none",
               "cross_validation": {"done": True, "folds": 3, "rows": 1437, "seconds": 54.3, "chosen": "trained",
                                    "scores": {"trained": {"value": 0.991, "ranking_loss": 0.0368},
                                               "search": {"value": 0.9854, "ranking_loss": 0.04155}}}}
    write_json(paths.redesign / "summary.json", summary)
    page = "".join(redesign_section(paths, "accuracy").blocks)
    assert ("Finalists cross-validated (3 folds of train + validation, 1,437 rows, 54 s): the trained initial design "
            "accuracy 0.9910, ranking loss 0.0368; the search&#x27;s choice accuracy 0.9854, ranking loss 0.04155; "
            "kept the trained initial design.") in page
    summary["cross_validation"] = {"done": False, "reason": "search.finalist_folds is 0"}
    write_json(paths.redesign / "summary.json", summary)
    assert "Finalists not cross-validated: search.finalist_folds is 0." in "".join(
        redesign_section(paths, "accuracy").blocks)
