"""The linear model as Keras: the converted model predicts what scikit-learn's logistic or ridge
regression predicts (numbers, category ids, a plain array, a class the training rows lack), saves
and loads in safe mode, runs under JAX; the redesign stage weighs it with the network and the
trees, and refits it when chosen."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.models import linear
from pipeline.models.builder import load_model
from pipeline.prepared import Rows
from pipeline.schema import STANDARDIZE, Schema
from pipeline.tasks import task_named
from tests.conftest import REPO
from tests.test_trees import table


def sklearn_outputs(schema, x, y, hyperparameters):
    """What scikit-learn predicts, fitted by hand on the same design matrix (standardised numbers, one-hot ids)
    with the regularisation the fit chose (`hyperparameters`: the design's)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    matrix = [StandardScaler().fit_transform(x["numeric"])] if "numeric" in x else []
    for spec in schema.columns_of("categorical"):
        ids = OneHotEncoder(categories=[np.arange(len(spec.vocabulary) + 1)], sparse_output=False)
        matrix.append(ids.fit_transform(x[spec.input]))
    matrix = np.concatenate(matrix, axis=1)
    if schema.task.name == "regression":
        return Ridge(alpha=hyperparameters["alpha"]).fit(matrix, y).predict(matrix).reshape(-1, 1)
    probabilities = LogisticRegression(C=hyperparameters["C"], max_iter=3000).fit(matrix, y).predict_proba(matrix)
    return probabilities[:, 1:] if schema.task.name == "binary" else probabilities


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_converted_linear_model_predicts_what_scikit_learn_predicts(task, tmp_path):
    schema, x, y = table(400, task)
    fitted = linear.fit_linear(schema, Rows(x, y), seed=0)
    outputs = np.asarray(fitted.model.predict(x, verbose=0))
    expected = sklearn_outputs(schema, x, y, fitted.design.hyperparameters)
    assert outputs.shape == expected.shape
    scale = 1000 if task == "regression" else 1
    np.testing.assert_allclose(outputs, expected, atol=1e-4 * scale, rtol=1e-4)
    assert fitted.design.family == linear.FAMILY
    strength = fitted.design.hyperparameters
    if task == "regression":
        assert strength["model"] == "ridge" and strength["alpha"] in linear.RIDGE_ALPHAS
    else:
        assert strength["model"] == "logistic_regression" and strength["C"] in linear.LOGISTIC_CS
    assert strength["cross_validated"] == 1
    assert not fitted.model.trainable_weights

    fitted.model.save(tmp_path / "linear.keras")
    reloaded = load_model(tmp_path / "linear.keras")
    np.testing.assert_array_equal(np.asarray(reloaded.predict(x, verbose=0)), outputs)


def test_categories_alone_and_a_plain_array_of_numbers():
    """With no numbers the intercept rides on the first category's table; an array input is all numbers."""
    schema, x, y = table(300, "binary")
    only_ids = {"categorical_plan": x["categorical_plan"]}
    y = (x["categorical_plan"][:, 0] >= 3).astype("float32")
    only_categories = dataclasses.replace(schema, columns=[c for c in schema.columns if c.kind == "categorical"])
    fitted = linear.fit_linear(only_categories, Rows(only_ids, y), seed=0)
    outputs = np.asarray(fitted.model.predict(only_ids, verbose=0))
    np.testing.assert_allclose(outputs, sklearn_outputs(only_categories, only_ids, y, fitted.design.hyperparameters),
                               atol=1e-5)

    array = x["numeric"]
    plain = Schema(source="a", task=task_named("binary"), input_kind="tabular", input_shape=[3],
                   features=["a", "b", "c"], scaling=STANDARDIZE, classes=["0", "1"])
    y = (array[:, 0] - array[:, 2] > 0).astype("float32")
    fitted = linear.fit_linear(plain, Rows(array, y), seed=0)
    outputs = np.asarray(fitted.model.predict(array, verbose=0))
    np.testing.assert_allclose(outputs, sklearn_outputs(plain, {"numeric": array}, y, fitted.design.hyperparameters),
                               atol=1e-5)


def wide_table(rows: int, task: str, noise_columns: int, seed: int = 0):
    """(schema, inputs, targets): one informative number among `noise_columns` pure-noise ones."""
    rng = np.random.default_rng(seed)
    array = rng.normal(size=(rows, 1 + noise_columns)).astype("float32")
    signal = array[:, 0] + 0.7 * rng.normal(size=rows)
    y = signal.astype("float32") if task == "regression" else (signal > 0).astype("float32")
    schema = Schema(source="w", task=task_named(task), input_kind="tabular", input_shape=[1 + noise_columns],
                    features=[f"f{i}" for i in range(1 + noise_columns)], scaling=STANDARDIZE,
                    classes=[] if task == "regression" else ["0", "1"])
    return schema, array, y


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_regularisation_is_chosen_by_cross_validation(task):
    """On a wide table of few rows, mostly noise, cross-validation picks a stronger regularisation than
    scikit-learn's default, and the model predicts new rows better than the default's; on a long table
    of few columns it does not regularise harder than the default."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import log_loss, mean_squared_error
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    schema, x, y = wide_table(1200, task, noise_columns=80)
    fit, new = slice(0, 150), slice(150, 1200)
    fitted = linear.fit_linear(schema, Rows(x[fit], y[fit]), seed=0)
    predicted = np.asarray(fitted.model.predict(x[new], verbose=0)).ravel()
    if task == "regression":
        assert fitted.design.hyperparameters["alpha"] >= 10.0
        default = make_pipeline(StandardScaler(), Ridge()).fit(x[fit], y[fit]).predict(x[new])
        assert mean_squared_error(y[new], predicted) < 0.9 * mean_squared_error(y[new], default)
    else:
        assert fitted.design.hyperparameters["C"] <= 0.1
        default = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x[fit], y[fit])
        assert log_loss(y[new], predicted) < 0.9 * log_loss(y[new], default.predict_proba(x[new])[:, 1])

    long_schema, long_x, long_y = wide_table(3000, task, noise_columns=2)
    strength = linear.fit_linear(long_schema, Rows(long_x, long_y), seed=0).design.hyperparameters
    assert strength.get("alpha", 1.0) <= 1.0 and strength.get("C", 1.0) >= 1.0


def test_a_class_too_small_for_two_folds_keeps_the_default_strength_and_the_rows_sampled_for_c_are_bounded(
        monkeypatch):
    schema, x, y = table(300, "multiclass", classes=3)
    y = np.where(np.arange(300) == 7, 2, np.where(y == 2, 0, y))  # class 2: one row
    fitted = linear.fit_linear(schema, Rows(x, y), seed=0)
    assert fitted.design.hyperparameters == {"model": "logistic_regression", "C": 1.0, "cross_validated": 0}
    assert linear.describe(fitted.design.hyperparameters) == ("logistic regression, C 1 scikit-learn's default: a "
                                                              "class has too few rows for two folds")
    np.testing.assert_allclose(np.asarray(fitted.model.predict(x, verbose=0)),
                               sklearn_outputs(schema, x, y, {"C": 1.0}), atol=1e-4)

    y = np.where(np.arange(300) < 3, 2, np.where(y == 2, 0, y))  # class 2: three rows, three folds
    assert linear.logistic_c(schema, Rows(x, y), seed=0) in linear.LOGISTIC_CS

    from sklearn.model_selection import GridSearchCV
    searched, fit = [], GridSearchCV.fit
    monkeypatch.setattr(GridSearchCV, "fit", lambda self, xs, ys: searched.append(len(ys)) or fit(self, xs, ys))
    monkeypatch.setattr(linear, "C_SEARCH_ROWS", 120)
    schema, x, y = table(300, "binary")
    assert linear.logistic_c(schema, Rows(x, y), seed=0) in linear.LOGISTIC_CS and searched == [120]


def test_a_class_the_training_rows_lack_is_never_predicted():
    schema, x, y = table(300, "multiclass", classes=4)
    y = np.where(y == 3, 0, y)
    outputs = np.asarray(linear.fit_linear(schema, Rows(x, y), seed=0).model.predict(x, verbose=0))
    assert outputs.shape == (300, 4) and outputs[:, 3].max() < 1e-6
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)


def test_the_linear_model_runs_and_reloads_under_jax(tmp_path):
    pytest.importorskip("jax")
    script = f"""
import numpy as np
from pipeline.models import linear
from pipeline.models.builder import load_model
from pipeline.prepared import Rows
from tests.test_linear import sklearn_outputs
from tests.test_trees import table
import keras
assert keras.backend.backend() == "jax"
schema, x, y = table(300, "multiclass")
fitted = linear.fit_linear(schema, Rows(x, y), seed=0)
model = fitted.model
outputs = np.asarray(model.predict(x, verbose=0))
np.testing.assert_allclose(outputs, sklearn_outputs(schema, x, y, fitted.design.hyperparameters), atol=1e-4)
model.save({str(tmp_path / "l.keras")!r})
np.testing.assert_array_equal(np.asarray(load_model({str(tmp_path / "l.keras")!r}).predict(x, verbose=0)), outputs)
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_redesign_stage_chooses_and_refits_the_linear_model_where_it_validates_best(capsys):
    """On a table whose target is linear in the numbers, the linear model beats a network that
    always predicts the prior; the summary and the reason say so; the refit refits it on train + validation."""
    from pipeline.prepared import Splits
    from pipeline.search.rounds import Candidate, RedesignLoop
    from pipeline.stages import redesign
    from tests.conftest import make_config

    schema, x, y = table(900, "binary")
    y = (x["numeric"][:, 0] - x["numeric"][:, 1] > 0).astype("float32")
    rows = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, 600), slice(600, 900))]
    splits = Splits(rows[0], rows[1], rows[1])
    cfg = make_config("data=breast_cancer")
    fitted = redesign.linear_model(cfg, schema, splits)
    c = fitted.design.hyperparameters["C"]
    assert (f"redesign: linear model (logistic regression, C {c:.3g} chosen by cross-validation, fitted on 600 "
            "training rows") in capsys.readouterr().out
    assert fitted.validation > 0.95

    from pipeline.designs import initial_design, preprocessing_stats
    from pipeline.models.builder import build_model
    design = dataclasses.replace(initial_design(cfg, "tabular", train_rows=600),
                                 preprocessing=preprocessing_stats(rows[0].x, rows[0].y, schema,
                                                                   cfg.train.target_transform))
    untrained = build_model(design, schema)
    value, loss = redesign.score_and_loss(untrained, cfg.goal, splits.validation)
    network = Candidate(1, design, value, {"loss": [1.0]}, untrained, loss, restored_epoch=1)
    summary = {"chosen": "search"}
    loop = RedesignLoop(cfg, schema, splits, design, None)
    best = redesign.weigh_plain_models(cfg, loop, network, None, fitted, summary)
    assert best is fitted and summary["chosen"] == "linear_model"
    assert summary["linear_model"] == {"validation": fitted.validation, "model": "logistic_regression", "C": c,
                                       "cross_validated": 1, "chosen": True}
    assert summary["reason"] == "the linear model (logistic_regression) beat the networks on validation"
    assert set(summary["ranking_losses"]) == {"network", "linear model"}

    model, done = redesign.refit_chosen(cfg, schema, splits, best, copies=3)
    both = Rows({k: np.concatenate([rows[0].x[k], rows[1].x[k]]) for k in x}, np.concatenate([rows[0].y, rows[1].y]))
    # the refit chooses its regularisation again, by cross-validation on train + validation, and records it
    refit_c = linear.logistic_c(schema, both, cfg.search.seed)
    assert done["done"] and done["copies"] == 0 and done["epochs"] == []
    assert done["linear_model"] == {"model": "logistic_regression", "C": refit_c, "cross_validated": 1}
    np.testing.assert_allclose(np.asarray(model.predict(both.x, verbose=0)),
                               sklearn_outputs(schema, both.x, both.y, {"C": refit_c}), atol=1e-4)


def weighing(rows: int, *overrides: str):
    """(config, splits, fitted linear model, redesign loop) on `table`'s binary target, its first two
    thirds for training and the rest for validation."""
    from pipeline.designs import Design
    from pipeline.prepared import Splits
    from pipeline.search.rounds import RedesignLoop
    from pipeline.stages import redesign
    from tests.conftest import make_config

    schema, x, y = table(rows, "binary")
    cut = 2 * rows // 3
    parts = [Rows({k: v[part] for k, v in x.items()}, y[part]) for part in (slice(0, cut), slice(cut, rows))]
    cfg = make_config("data=breast_cancer", *overrides)
    splits = Splits(parts[0], parts[1], parts[1])
    return cfg, splits, redesign.linear_model(cfg, schema, splits), RedesignLoop(cfg, schema, splits,
                                                                                  Design("mlp", {}), None)


def bayes_model():
    """A Keras model that knows how `table`'s binary target was drawn: its true probability, which no
    linear model reaches (the target has an interaction)."""
    import keras
    from keras import ops

    numbers = keras.Input((3,), name="numeric")
    plan = keras.Input((1,), name="categorical_plan", dtype="int32")
    signal = (numbers[:, 0] + ops.cast(ops.equal(plan[:, 0], 2), "float32")
              - 0.5 * numbers[:, 1] * ops.cast(numbers[:, 2] > 0, "float32"))
    probability = ops.expand_dims(ops.sigmoid(1.7 * (signal - 0.2) / 0.3), 1)  # the normal CDF, nearly
    return keras.Model({"numeric": numbers, "categorical_plan": plan}, probability)


def test_a_tie_on_validation_goes_to_the_lower_ranking_loss_and_the_reason_says_so():
    from pipeline.designs import Design
    from pipeline.search.rounds import Candidate
    from pipeline.stages import redesign

    cfg, splits, fitted, loop = weighing(300)
    oracle = bayes_model()
    oracle_loss = redesign.score_and_loss(oracle, cfg.goal, splits.validation)[1]
    assert oracle_loss < fitted.loss
    for model, network_loss, expected in ((None, fitted.loss + 0.1, "linear_model"),
                                          (oracle, oracle_loss, "search")):
        network = Candidate(1, Design("mlp", {}), fitted.validation, {}, model, network_loss)
        summary = {"chosen": "search", "reason": "search found a better design"}
        best = redesign.weigh_plain_models(cfg, loop, network, None, fitted, summary)
        assert summary["chosen"] == expected and (best is fitted) == (expected == "linear_model")
    assert summary["reason"] == "search found a better design"
    summary = {"chosen": "search"}
    redesign.weigh_plain_models(cfg, loop, Candidate(1, Design("mlp", {}), fitted.validation, {}, None,
                                                     fitted.loss + 0.1), None, fitted, summary)
    assert summary["reason"] == ("the linear model (logistic_regression) scored as high as the best on validation, "
                                 "with the lowest ranking loss")


def test_for_a_binary_auc_a_lead_within_its_standard_error_goes_to_the_lower_ranking_loss():
    from pipeline.designs import Design
    from pipeline.search.rounds import Candidate
    from pipeline.stages import redesign

    cfg, splits, fitted, loop = weighing(300, "goal.metric=auc", "goal.threshold=0.9")
    assert loop.positives == int(splits.validation.y.sum())
    noise = cfg.objective.standard_error(fitted.validation + 0.01, 100, loop.positives)
    assert noise > 0.01
    network = Candidate(1, Design("mlp", {}), fitted.validation + 0.01, {}, None, fitted.loss + 0.1)
    summary = {"chosen": "search"}
    assert redesign.weigh_plain_models(cfg, loop, network, None, fitted, summary) is fitted
    assert summary["reason"] == ("the linear model (logistic_regression) scored within a standard error of the best "
                                 "on validation, with the lowest ranking loss")
    assert summary["validation_standard_error"] == pytest.approx(noise)
    clear = Candidate(1, Design("mlp", {}), fitted.validation + 2 * noise, {}, None, fitted.loss + 0.1)
    assert redesign.weigh_plain_models(cfg, loop, clear, None, fitted, {"chosen": "search"}) is clear


def test_a_whole_run_on_a_table_weighs_the_linear_model_and_the_report_says_so(breast_cancer_run):
    from pipeline.files import read_json

    _, paths, _ = breast_cancer_run
    summary = read_json(paths.redesign / "summary.json")
    weighed = summary["linear_model"]
    assert weighed["model"] == "logistic_regression" and 0.5 < weighed["validation"] <= 1.0
    assert weighed["C"] in linear.LOGISTIC_CS
    assert weighed["chosen"] == (summary["chosen"] == "linear_model")
    assert {"network", "boosted trees", "their average", "linear model"} == set(summary["ranking_losses"])
    assert f"Linear model (logistic regression, C {weighed['C']:.3g} chosen by cross-validation" in \
        (paths.reports / "index.html").read_text()


def test_the_linear_model_level_on_the_goal_and_on_its_paired_loss_is_kept_as_the_simplest(capsys):
    """One standard error rule: a network ahead by less than a standard error of AUC whose per-row
    losses are no lower than the linear model's gives way to it; one whose losses are lower by more
    than their paired standard error (the true probabilities) does not; the summary records the gap."""
    from pipeline.designs import Design
    from pipeline.search.rounds import Candidate
    from pipeline.stages import redesign

    cfg, splits, fitted, loop = weighing(600, "goal.metric=auc", "goal.threshold=0.99")
    noise = cfg.objective.standard_error(fitted.validation, len(splits.validation), loop.positives)
    ahead = fitted.validation + noise / 2

    same = Candidate(1, Design("mlp", {}), ahead, {}, fitted.model, fitted.loss - 0.01)  # predicts what it predicts
    summary = {"chosen": "search"}
    assert redesign.weigh_plain_models(cfg, loop, same, None, fitted, summary) is fitted
    assert summary["linear_model"]["ranking_loss_gap"] == 0.0 and summary["chosen"] == "linear_model"
    assert summary["reason"] == (
        "the linear model (logistic_regression) scored within a standard error of the best on validation, and its "
        "ranking loss was within a standard error of the best's (paired row by row): the simplest model is kept")
    assert "redesign: the linear model scored within a standard error of the best on validation" in \
        capsys.readouterr().out

    oracle = bayes_model()
    value, loss = redesign.score_and_loss(oracle, cfg.goal, splits.validation)
    assert cfg.objective.lead(value, fitted.validation) > 0
    network = Candidate(1, Design("mlp", {}), min(value, ahead), {}, oracle, loss)
    summary = {"chosen": "search", "reason": "search found a better design"}
    assert redesign.weigh_plain_models(cfg, loop, network, None, fitted, summary) is network
    gap = summary["linear_model"]
    assert gap["ranking_loss_gap"] > gap["ranking_loss_gap_standard_error"] > 0 and not gap["chosen"]
    assert gap["ranking_loss_gap"] == pytest.approx(fitted.loss - loss, abs=0.02)  # temperatures fitted per model
    assert summary["reason"] == "search found a better design"

    far = Candidate(1, Design("mlp", {}), fitted.validation + 2 * noise, {}, fitted.model, fitted.loss)
    summary = {"chosen": "search"}
    assert redesign.weigh_plain_models(cfg, loop, far, None, fitted, summary) is far
    assert "ranking_loss_gap" not in summary["linear_model"]  # not level on the goal: no loss compared


def test_the_report_says_how_far_a_level_linear_models_loss_was_from_the_best(tmp_path):
    from pipeline.designs import Design
    from pipeline.files import write_json
    from pipeline.paths import Paths
    from pipeline.stages import redesign
    from pipeline.stages.report import redesign_section

    paths = Paths(tmp_path)
    paths.redesign.mkdir(parents=True)
    summary = {"chosen": "linear_model", "reason": "the linear model (logistic_regression) scored within ...",
               "trained_validation": 0.93, "validation": 0.9368,
               "linear_model": {"validation": 0.9368, "model": "logistic_regression", "C": 0.1, "cross_validated": 1,
                                "chosen": True,
                                "ranking_loss_gap": 0.00086, "ranking_loss_gap_standard_error": 0.000886}}
    linear_design = Design(linear.FAMILY, {"model": "logistic_regression", "C": 0.1, "cross_validated": 1})
    summary["curves"] = redesign.curves_caption(linear_design)
    redesign.write_curves({}, paths.redesign / "curves.csv")
    write_json(paths.redesign / "summary.json", summary)
    html = "".join(redesign_section(paths, "auc").blocks)
    assert ("Linear model (logistic regression, C 0.1 chosen by cross-validation, converted into Keras "
            "layers): validation auc 0.9368; level with the best on it, its ranking loss +0.00086 from the best's "
            "(one standard error of the row-by-row differences: 0.000886); chosen.") in html.replace("&#x27;", "'")
    del summary["linear_model"]["ranking_loss_gap"], summary["linear_model"]["ranking_loss_gap_standard_error"]
    write_json(paths.redesign / "summary.json", summary)
    assert "validation auc 0.9368; chosen." in "".join(redesign_section(paths, "auc").blocks)
