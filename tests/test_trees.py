"""Boosted trees as Keras: the converted model predicts what scikit-learn predicts (binary,
multiclass, regression; numbers and category ids), saves and loads in safe mode, runs under JAX,
and averages with a network; the redesign stage weighs them and refits the chosen one."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.models import trees
from pipeline.models.builder import build_model, ensemble_of, load_model
from pipeline.prepared import Rows
from pipeline.schema import STANDARDIZE, ColumnSpec, Schema
from pipeline.tasks import task_named
from tests.conftest import REPO


def table(rows: int, task: str, seed: int = 0, classes: int = 3):
    """(schema, inputs as the pipeline encodes a typed table, targets): 3 numbers and a category id."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 3)).astype("float32")
    plan = rng.integers(1, 5, size=(rows, 1)).astype("int32")
    signal = numbers[:, 0] + (plan[:, 0] == 2) - 0.5 * numbers[:, 1] * (numbers[:, 2] > 0)
    if task == "regression":
        y = 1000 * signal + rng.normal(size=rows)
    elif task == "binary":
        y = (signal + 0.3 * rng.normal(size=rows) > 0.2).astype("float32")
    else:
        y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1])).astype("int64")
    columns = [*(ColumnSpec(f"n{i}", "numeric", "median", "numeric", fill=0.0) for i in range(3)),
               ColumnSpec("plan", "categorical", "most_frequent", "categorical_plan", vocabulary=list("abcd"))]
    schema = Schema(source="t", task=task_named(task), input_kind="tabular", input_shape=[4],
                    features=["n0", "n1", "n2", "plan"], scaling=STANDARDIZE, columns=columns,
                    classes=[] if task == "regression" else [str(c) for c in range(2 if task == "binary" else classes)])
    return schema, {"numeric": numbers, "categorical_plan": plan}, y


def sklearn_outputs(fitted_trees: trees.FittedTrees, schema, x, y):
    """What scikit-learn itself predicts, refitting the same settings on the same rows."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    regression = schema.task.name == "regression"
    estimator = (GradientBoostingRegressor if regression else GradientBoostingClassifier)(
        **{**trees.SETTINGS, "n_estimators": trees.MAX_TREES, "random_state": 0})
    matrix = trees.tree_inputs(x, fitted_trees.encodings)
    estimator.fit(matrix, y)
    if regression:
        return estimator.predict(matrix).reshape(-1, 1)
    probabilities = estimator.predict_proba(matrix)
    return probabilities[:, 1:] if schema.task.name == "binary" else probabilities


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_converted_trees_predict_what_scikit_learn_predicts(task, tmp_path):
    schema, x, y = table(400, task)
    fitted = trees.fit_trees(schema, Rows(x, y), seed=0)
    expected = sklearn_outputs(fitted, schema, x, y)
    outputs = np.asarray(fitted.model.predict(x, verbose=0))
    assert outputs.shape == expected.shape
    scale = 1000 if task == "regression" else 1
    np.testing.assert_allclose(outputs, expected, atol=1e-4 * scale, rtol=1e-4)
    assert fitted.design.family == trees.FAMILY and 1 <= fitted.design.hyperparameters["trees"] <= trees.MAX_TREES

    fitted.model.save(tmp_path / "trees.keras")
    reloaded = load_model(tmp_path / "trees.keras")
    np.testing.assert_array_equal(np.asarray(reloaded.predict(x, verbose=0)), outputs)


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=20))
def test_float32_threshold_sends_a_value_where_scikit_learn_does(values):
    """scikit-learn compares float32 inputs against float64 thresholds; the float32 threshold kept
    must give the same side for every float32 value."""
    for threshold in values:
        kept = trees._float32_at_most(threshold)
        for value in (*values, np.float32(threshold), np.nextafter(np.float32(threshold), np.float32(np.inf))):
            value = np.float32(value)
            assert (value <= kept) == (float(value) <= threshold)


def test_an_unseen_class_in_the_training_rows_is_never_predicted():
    schema, x, y = table(300, "multiclass", classes=4)
    y = np.where(y == 3, 0, y)  # class 3 absent from the training rows
    outputs = np.asarray(trees.fit_trees(schema, Rows(x, y), seed=0).model.predict(x, verbose=0))
    assert outputs.shape == (300, 4) and outputs[:, 3].max() < 1e-6
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)


def test_categories_are_encoded_by_their_training_target():
    """Each id's encoding follows its rows' target (one column per class for several classes);
    an id the training rows lack gets the overall mean; the converted model looks the same up."""
    schema, x, y = table(600, "binary")
    x["categorical_plan"] = np.where(x["categorical_plan"] == 4, 3, x["categorical_plan"])  # id 4 unseen
    y = (x["categorical_plan"][:, 0] == 2).astype("float32")  # id 2: always positive, the others never
    tables = trees.target_encodings(schema, Rows(x, y))
    encoding = tables["categorical_plan"][:, 0]
    assert tables["categorical_plan"].shape == (5, 1)
    assert encoding[2] > 0.9 and max(encoding[1], encoding[3]) < 0.1
    np.testing.assert_allclose([encoding[0], encoding[4]], y.mean(), rtol=1e-5)
    assert trees.tree_inputs(x, tables).shape == (600, 5)

    multiclass, mx, my = table(600, "multiclass", classes=3)
    assert trees.target_encodings(multiclass, Rows(mx, my))["categorical_plan"].shape == (5, 3)
    fitted = trees.fit_trees(schema, Rows(x, y), seed=0)
    assert fitted.design.hyperparameters["target_encoded_categories"] == 1
    np.testing.assert_allclose(np.asarray(fitted.model.predict(x, verbose=0))[:, 0], y, atol=0.05)


def test_trees_read_only_tables_of_numbers_and_categories():
    schema, _, _ = table(10, "binary")
    assert trees.reads(schema)
    text = ColumnSpec("note", "text", "empty", "text_note", sequence_length=4, vocabulary_size=10)
    assert not trees.reads(dataclasses.replace(schema, columns=[*schema.columns, text]))
    assert not trees.reads(dataclasses.replace(schema, task=task_named("multilabel")))
    assert not trees.reads(dataclasses.replace(schema, input_kind="sequence"))


def test_trees_average_with_a_network_of_the_same_inputs():
    from pipeline.designs import initial_design, preprocessing_stats
    from tests.conftest import make_config

    schema, x, y = table(200, "binary")
    cfg = make_config("data=breast_cancer")
    design = dataclasses.replace(initial_design(cfg, "tabular", train_rows=200),
                                 preprocessing=preprocessing_stats(x, y, schema, cfg.train.target_transform))
    network = build_model(design, schema)
    fitted = trees.fit_trees(schema, Rows(x, y), seed=0)
    average = ensemble_of([network, fitted.model])
    both = np.asarray(average.predict(x, verbose=0))
    parts = [np.asarray(m.predict(x, verbose=0)) for m in (network, fitted.model)]
    np.testing.assert_allclose(both, (parts[0] + parts[1]) / 2, atol=1e-5)


def test_converted_trees_run_and_reload_under_jax(tmp_path):
    pytest.importorskip("jax")
    script = f"""
import numpy as np
from pipeline.models import trees
from pipeline.models.builder import load_model
from pipeline.prepared import Rows
from tests.test_trees import sklearn_outputs, table
import keras
assert keras.backend.backend() == "jax"
schema, x, y = table(300, "multiclass")
fitted = trees.fit_trees(schema, Rows(x, y), seed=0)
outputs = np.asarray(fitted.model.predict(x, verbose=0))
np.testing.assert_allclose(outputs, sklearn_outputs(fitted, schema, x, y), atol=1e-4)
fitted.model.save({str(tmp_path / "t.keras")!r})
np.testing.assert_array_equal(np.asarray(load_model({str(tmp_path / "t.keras")!r}).predict(x, verbose=0)), outputs)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    # a process that never imported the trees module (the validate and export stages) loads it too
    loading = f"from pipeline.models.builder import load_model; load_model({str(tmp_path / 't.keras')!r})"
    result = subprocess.run([sys.executable, "-c", loading], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_redesign_stage_weighs_the_trees_and_refits_an_average_with_them(breast_cancer_run, tmp_path):
    from pipeline.designs import Design
    from pipeline.files import read_json
    from pipeline.prepared import load_splits
    from pipeline.search.rounds import RedesignLoop
    from pipeline.stages import redesign

    cfg, paths, _ = breast_cancer_run
    weighed = read_json(paths.redesign / "summary.json")["boosted_trees"]
    assert weighed["trees"] >= 1 and 0.5 < weighed["validation"] <= 1.0

    splits, schema = load_splits(paths)
    initial = Design.load(paths.design / "design.json")
    network = redesign._trained_run(paths, cfg, initial, read_json(paths.metrics / "train.json"), splits)
    boosted = redesign.boosted_trees(cfg, schema, splits)
    summary = {"chosen": "trained"}
    best = redesign.weigh_plain_models(cfg, RedesignLoop(cfg, schema, splits, initial, tmp_path), network, boosted,
                                       None, summary)
    scores = {"network": network.validation, "boosted trees": boosted.validation,
              "their average": summary["boosted_trees"]["average_with_network_validation"]}
    losses = summary["ranking_losses"]
    assert set(losses) == set(scores) and "linear_model" not in summary
    noise = (max(scores.values()) * (1 - max(scores.values())) / len(splits.validation)) ** 0.5  # accuracy
    level = [name for name in scores if scores[name] >= max(scores.values()) - noise]
    assert best.loss == min(losses[name] for name in level)
    assert summary["chosen"] == {id(network): "trained", id(boosted): "boosted_trees"}.get(id(best), "ensemble")

    average = redesign.Candidate(0, Design.ensemble([network.design, boosted.design]), 0.0, network.curves,
                                 None, members=[network, boosted])
    model, done = redesign.refit_chosen(cfg, schema, splits, average, copies=2)
    assert done["done"] and done["copies"] == 2 and done["trees"] == boosted.design.hyperparameters["trees"]
    assert done["rows"] == len(splits.train) + len(splits.validation)
    outputs = np.asarray(model.predict(splits.test.x, verbose=0))
    assert outputs.shape == (len(splits.test), 1) and np.all((outputs >= 0) & (outputs <= 1))


def test_a_table_with_categories_keeps_the_trees_with_or_without_encodings_that_validate_better(capsys):
    from pipeline.designs import Design
    from pipeline.prepared import Splits
    from pipeline.search.rounds import Candidate
    from pipeline.stages import redesign
    from tests.conftest import make_config

    schema, x, y = table(900, "binary")
    rows = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 600), slice(600, 900))]
    cfg = make_config("data=breast_cancer")
    chosen = redesign.boosted_trees(cfg, schema, Splits(rows[0], rows[1], rows[1]))
    fits = [line for line in capsys.readouterr().out.splitlines() if "gradient-boosted trees (" in line]
    assert len(fits) == 2 and "target-encoded" in fits[0] and "target-encoded" not in fits[1]
    scores = [float(line.rsplit(" ", 1)[1]) for line in fits]
    assert round(chosen.validation, 4) in scores and chosen.validation >= max(scores) - (0.25 / 300) ** 0.5

    plain = Candidate(0, Design(trees.FAMILY, {"trees": 5, "target_encoded_categories": 0}), 0.0, {}, None)
    refitted = redesign._refitted(cfg, schema, rows[0], plain, copies=1)
    assert not any(layer.name.endswith("_target_encoding") for layer in refitted.layers)
    encoded = dataclasses.replace(plain, design=Design(trees.FAMILY, {"trees": 5, "target_encoded_categories": 1}))
    assert any(layer.name.endswith("_target_encoding") for layer in redesign._refitted(cfg, schema, rows[0], encoded,
                                                                                        copies=1).layers)


def test_trees_fit_on_a_bounded_sample_of_a_large_table(monkeypatch):
    from pipeline.stages import redesign

    schema, x, y = table(1000, "multiclass", classes=3)
    monkeypatch.setattr(redesign, "TREE_ROW_OUTPUTS", 600)  # 200 rows for each of the 3 outputs
    rows = redesign.tree_rows(Rows(x, y), schema, seed=0)
    assert len(rows) == 200 and set(np.unique(rows.y)) == {0, 1, 2}
    binary, bx, by = table(1000, "binary")
    assert len(redesign.tree_rows(Rows(bx, by), binary, seed=0)) == 600  # one output
    monkeypatch.setattr(redesign, "TREE_ROW_OUTPUTS", 100_000)
    assert redesign.tree_rows(Rows(bx, by), binary, seed=0).x is bx  # small tables: every row


def test_boosting_stops_with_the_trees_it_has_when_its_time_limit_is_spent():
    schema, x, y = table(600, "multiclass", classes=4)
    unlimited = trees.fit_trees(schema, Rows(x, y), seed=0)
    assert not unlimited.cut_short and unlimited.design.hyperparameters["trees"] > 1
    stopped = trees.fit_trees(schema, Rows(x, y), seed=0, seconds=0.0)
    assert stopped.cut_short and stopped.design.hyperparameters["trees"] == 1  # one round, then the limit
    assert stopped.estimator.n_estimators_ == 1
    outputs = np.asarray(stopped.model.predict(x, verbose=0))
    np.testing.assert_allclose(outputs, stopped.estimator.predict_proba(trees.tree_inputs(x, stopped.encodings)),
                               atol=1e-5)
    roomy = trees.fit_trees(schema, Rows(x, y), seed=0, seconds=600.0)
    assert not roomy.cut_short and roomy.design.hyperparameters["trees"] == unlimited.design.hyperparameters["trees"]


def test_the_trees_fits_share_a_quarter_of_the_search_budget(monkeypatch, capsys):
    from pipeline.prepared import Splits
    from pipeline.stages import redesign
    from tests.conftest import make_config

    schema, x, y = table(900, "binary")
    rows = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 600), slice(600, 900))]
    limits = []
    fit = trees.fit_trees
    monkeypatch.setattr(trees, "fit_trees", lambda *a, seconds=None, **k: limits.append(seconds) or fit(
        *a, seconds=seconds, **k))
    redesign.boosted_trees(make_config("data=breast_cancer", "search.time_budget_s=100"), schema,
                           Splits(rows[0], rows[1], rows[1]))
    assert len(limits) == 2 and limits[0] == pytest.approx(100 * redesign.TREE_BUDGET_SHARE / 2)
    assert limits[1] > limits[0]  # the first fit took less than its half; the second gets the rest
    assert "stopped at its" not in capsys.readouterr().out

    monkeypatch.setattr(redesign, "TREE_BUDGET_SHARE", 0.0)
    chosen = redesign.boosted_trees(make_config("data=breast_cancer"), schema, Splits(rows[0], rows[1], rows[1]))
    fits = [line for line in capsys.readouterr().out.splitlines() if "gradient-boosted trees (" in line]
    assert len(fits) == 2 and all("(1 per output" in line and "stopped at its 0 s share of search.time_budget_s"
                                  in line for line in fits)
    assert chosen.design.hyperparameters["trees"] == 1


@pytest.mark.parametrize("task,metric", [("binary", "auc"), ("multiclass", "accuracy"), ("regression", "r2")])
def test_learning_curves_follow_the_boosting_rounds_to_the_converted_models_scores(task, metric):
    schema, x, y = table(500, task)
    train, validation = (Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 350), slice(350, 500)))
    fitted = trees.fit_trees(schema, train, seed=0)
    curves = trees.learning_curves(fitted, schema, metric, train, validation)
    rounds = fitted.design.hyperparameters["trees"]
    assert set(curves) == {"loss", "val_loss", "goal", "val_goal"} and all(len(c) == rounds for c in curves.values())
    for prefix, rows in (("", train), ("val_", validation)):
        raw = np.asarray(fitted.model.predict(rows.x, verbose=0))
        assert curves[f"{prefix}loss"][-1] == pytest.approx(schema.task.validation_loss(rows.y, raw), rel=1e-3)
        assert curves[f"{prefix}goal"][-1] == pytest.approx(schema.task.score(metric, rows.y, raw), abs=1e-3)
    assert curves["loss"][-1] < curves["loss"][0]  # boosting fits the training rows round by round


def test_the_kept_trees_curves_are_written_and_plotted_per_boosting_round(tmp_path):
    import pandas as pd

    from pipeline.designs import Design
    from pipeline.plots import curves_png
    from pipeline.prepared import Splits
    from pipeline.stages import redesign
    from tests.conftest import make_config

    schema, x, y = table(900, "binary")
    rows = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 600), slice(600, 900))]
    kept = redesign.boosted_trees(make_config("data=breast_cancer"), schema, Splits(rows[0], rows[1], rows[1]))
    redesign.write_curves(kept.curves, tmp_path / "curves.csv")
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert list(curves["epoch"]) == list(range(1, kept.design.hyperparameters["trees"] + 1))
    assert curves["val_goal"].iloc[-1] == pytest.approx(kept.validation, abs=1e-3)  # accuracy: the kept trees'
    caption = redesign.curves_caption(kept.design)
    assert "one point per boosting round" in caption
    curves_png(curves, tmp_path / "curves.png", caption)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert "no learning curves" in redesign.curves_caption(Design("linear_model", {}))
    assert "its best member" in redesign.curves_caption(Design.ensemble([kept.design, kept.design]))
