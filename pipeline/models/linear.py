"""A regularised linear model as a Keras model: the plain candidate tables have beside the networks and the trees.

What a practitioner fits first on a table, and often the one to beat on small or imbalanced ones:
scikit-learn's `LogisticRegression` (classes) or `Ridge` (values) on the model's own inputs:
numbers standardised on the training rows (missing values arrive filled), each category one-hot
(id 0: unknown or missing). Their regularisation strength is chosen by cross-validation on the
training rows, as scikit-learn's `RidgeCV` (leave-one-out) and a `GridSearchCV` over logistic
regression's C (stratified folds, log loss) do, rather than left at its default: the default
suits neither a wide table of a few hundred rows nor a long one of a few columns. The fitted weights become
fixed Keras layers: a Dense on the numbers (the standardisation folded into its weights) and an
Embedding per category (a one-hot row times the weights is the id's row), summed, through the
output activation. So the converted model takes the same inputs as a network, and `predict`,
serving, the registry and safe-mode loading need nothing new.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pipeline.designs import Design
from pipeline.lazy import keras
from pipeline.models.trees import ACTIVATIONS, feature_matrix
from pipeline.models.trees import reads as reads_table
from pipeline.prepared import Rows, subsample
from pipeline.schema import Schema

FAMILY = "linear_model"  # the design's family name (not a network family: see pipeline.models.registry)
MISSING_CLASS_LOGIT = -1e4  # a class the training rows lack is never predicted
RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 13))  # ridge's strengths tried (scikit-learn's default: 1)
LOGISTIC_CS = tuple(np.logspace(-3, 2, 6))  # logistic regression's inverse strengths tried (default: 1)
C_SEARCH_FOLDS = 5
C_SEARCH_ROWS = 10_000  # C is chosen on a stratified sample of at most this many rows (30 fits),
C_SEARCH_ROW_OUTPUTS = 100_000  # and at most this many rows x classes (a fit's time grows with both)


def reads(schema: Schema) -> bool:
    """The same tables as the trees: numbers and categories, for one class, one of several, or a value."""
    return reads_table(schema)


@dataclass
class FittedLinear:
    """The linear model converted to Keras, the design that names it, the fit's seconds, and the
    scikit-learn pipeline it was converted from."""

    model: keras.Model
    design: Design
    seconds: float
    estimator: object


def fit_linear(schema: Schema, rows: Rows, seed: int) -> FittedLinear:
    """Logistic regression (classes) or ridge regression (values) fitted on `rows`, its regularisation
    chosen by cross-validation on them, converted to Keras."""
    from sklearn.linear_model import LogisticRegression, RidgeCV

    started = time.monotonic()
    x, y = feature_matrix(rows.x), np.asarray(rows.y).reshape(-1)
    if schema.task.name == "regression":
        model = RidgeCV(alphas=np.array(RIDGE_ALPHAS))  # leave-one-out errors for every alpha from one decomposition
        estimator = _with_encoding(model, rows.x, schema).fit(x, y)
        # scikit-learn's own names: ridge's alpha (strength), logistic regression's C (its inverse)
        hyperparameters = {"model": "ridge", "alpha": float(model.alpha_), "cross_validated": 1}
    else:
        chosen = logistic_c(schema, rows, seed)
        c = 1.0 if chosen is None else chosen  # scikit-learn's default where no folds can be made
        estimator = _with_encoding(LogisticRegression(C=c, max_iter=3000, random_state=seed), rows.x, schema)
        estimator.fit(x, y)
        hyperparameters = {"model": "logistic_regression", "C": c, "cross_validated": int(chosen is not None)}
    return FittedLinear(to_keras(estimator, rows.x, schema), Design(FAMILY, hyperparameters),
                        round(time.monotonic() - started, 2), estimator)


def describe(hyperparameters: dict) -> str:
    """'logistic regression, C 0.1 chosen by cross-validation': the model and its regularisation (a
    linear design's hyperparameters), in words."""
    strength = "alpha" if hyperparameters["model"] == "ridge" else "C"
    how = "chosen by cross-validation" if hyperparameters["cross_validated"] else \
        "scikit-learn's default: a class has too few rows for two folds"
    return f"{hyperparameters['model'].replace('_', ' ')}, {strength} {hyperparameters[strength]:.3g} {how}"


def logistic_c(schema: Schema, rows: Rows, seed: int) -> float | None:
    """Logistic regression's C of LOGISTIC_CS with the lowest log loss over stratified folds of (at most
    C_SEARCH_ROWS, and C_SEARCH_ROW_OUTPUTS / outputs, of) `rows`; None where a class has too few
    rows for two folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    limit = min(C_SEARCH_ROWS, C_SEARCH_ROW_OUTPUTS / schema.task.n_outputs(len(schema.classes)))
    sample = subsample(rows, min(1.0, limit / max(1, len(rows))), seed, stratify=True)
    y = np.asarray(sample.y).reshape(-1)
    folds = min(C_SEARCH_FOLDS, int(np.unique(y, return_counts=True)[1].min()))
    if folds < 2:
        return None
    search = GridSearchCV(_with_encoding(LogisticRegression(max_iter=3000, random_state=seed), sample.x, schema),
                          {"logisticregression__C": LOGISTIC_CS}, scoring="neg_log_loss",
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                          refit=False)  # fit_linear fits the chosen C once, on all the rows
    search.fit(feature_matrix(sample.x), y)
    return float(search.best_params_["logisticregression__C"])


def _with_encoding(model, example_x, schema: Schema):
    """`model` behind the model's own encoding of the inputs: numbers standardised, each category one-hot."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers, categories = _positions(example_x, schema)
    parts = [("numbers", StandardScaler(), numbers)] if numbers else []
    parts += [(f"category {position}", OneHotEncoder(categories=[np.arange(size, dtype="float32")],
                                                      handle_unknown="ignore"), [position])
              for position, size in categories]
    return make_pipeline(ColumnTransformer(parts), model)


def to_keras(estimator, example_x, schema: Schema) -> keras.Model:
    """A Keras model computing `estimator`'s predictions from inputs shaped like `example_x`."""
    transformer, model = estimator[0], estimator[-1]
    outputs = schema.task.n_outputs(len(schema.classes))
    coef = np.atleast_2d(np.asarray(model.coef_, "float64"))  # (columns of coef, transformed features)
    intercept = np.atleast_1d(np.asarray(model.intercept_, "float64"))
    # a row of coef -> the model's output for it (multiclass: the classes the training rows hold)
    output_of = [int(c) for c in model.classes_] if coef.shape[0] > 1 else [0]
    weights = np.zeros((coef.shape[1], outputs))
    weights[:, output_of] = coef.T
    bias = np.full(outputs, MISSING_CLASS_LOGIT if coef.shape[0] > 1 else 0.0)
    bias[output_of] = intercept

    numbers, categories = _positions(example_x, schema)
    offset = 0
    number_weights = None
    if numbers:
        scaler = transformer.named_transformers_["numbers"]
        number_weights = weights[:len(numbers)] / scaler.scale_[:, None]
        bias -= scaler.mean_ @ number_weights
        offset = len(numbers)
    tables = {}
    for position, size in categories:
        tables[position] = weights[offset:offset + size]
        offset += size

    if isinstance(example_x, dict):
        names = sorted(example_x)
        inputs = {name: keras.Input(shape=example_x[name].shape[1:], dtype=example_x[name].dtype.name, name=name)
                  for name in names}
        categorical = {spec.input for spec in schema.columns_of("categorical")}
        numeric_inputs = [inputs[name] for name in names if name not in categorical]
        category_inputs = [inputs[name] for name in names if name in categorical]
    else:
        inputs = keras.Input(shape=np.shape(example_x)[1:], dtype="float32", name="features")
        numeric_inputs, category_inputs = [inputs], []
    terms = []
    if numeric_inputs:
        joined = numeric_inputs[0] if len(numeric_inputs) == 1 else keras.layers.Concatenate()(numeric_inputs)
        dense = keras.layers.Dense(outputs, trainable=False, name="numbers_weights", dtype="float32")
        terms.append(dense(keras.layers.Flatten()(joined)))
        dense.set_weights([number_weights.astype("float32"), bias.astype("float32")])
        bias = np.zeros(outputs)
    for tensor, (position, _) in zip(category_inputs, categories):
        table = tables[position] + bias  # the intercept rides on the first table when there are no numbers
        bias = np.zeros(outputs)
        lookup = keras.layers.Embedding(*table.shape, trainable=False, name=f"{tensor.name}_weights",
                                        dtype="float32")
        terms.append(keras.layers.Flatten()(lookup(tensor)))
        lookup.set_weights([table.astype("float32")])
    summed = terms[0] if len(terms) == 1 else keras.layers.Add()(terms)
    out = keras.layers.Activation(ACTIVATIONS[schema.task.name], name="prediction", dtype="float32")(summed)
    return keras.Model(inputs, out, name=f"{FAMILY}_{schema.source}")


def _positions(x, schema: Schema) -> tuple[list[int], list[tuple[int, int]]]:
    """Where in `feature_matrix(x)` the numbers are, and each category id with its number of ids."""
    if not isinstance(x, dict):
        return list(range(int(np.prod(np.shape(x)[1:])))), []
    sizes = {spec.input: len(spec.vocabulary) + 1 for spec in schema.columns_of("categorical")}  # + 0: unknown
    numbers, categories, position = [], [], 0
    for name in sorted(x):
        width = int(np.prod(np.shape(x[name])[1:]))
        if name in sizes:
            categories.append((position, sizes[name]))
        else:
            numbers.extend(range(position, position + width))
        position += width
    return numbers, categories
