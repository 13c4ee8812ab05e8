"""Gradient-boosted trees as a Keras model: the candidate that tables have beside the networks.

scikit-learn fits the trees on the model's own inputs (numbers as the exported model receives
them, category ids as ordered numbers) and on each category's target encoding (its training
rows' mean target, smoothed; one per class), with its own early stopping on a tenth of the rows.
Category ids are numbered by frequency, which says nothing of the target: the encoding puts
categories that predict alike side by side, so one split can separate them (what LightGBM and
HistGradientBoosting do by sorting categories at each split). `BoostedTrees` then evaluates the
trees with Keras ops in the GEMM form of Hummingbird (Nakandala et al., OSDI 2020): every split's
comparison at once, then a path matrix that says which leaf each row reaches; a fixed Embedding
looks the encodings up. So the converted model takes the same inputs as a network, averages with
one (`ensemble_of`), and `predict`, serving and the registry keep taking one Keras model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pipeline.designs import Design
from pipeline.lazy import keras
from pipeline.models.layers import BoostedTrees
from pipeline.prepared import Rows
from pipeline.schema import Schema

FAMILY = "boosted_trees"  # the design's family name (not a network family: see pipeline.models.registry)
MAX_TREES = 500  # per class; early stopping usually ends sooner
SETTINGS = {"max_depth": 3, "learning_rate": 0.1, "validation_fraction": 0.1, "n_iter_no_change": 20}
ACTIVATIONS = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}
TARGET_TYPES = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}  # TargetEncoder's names


def reads(schema: Schema) -> bool:
    """Trees read tables of numbers and categories, for one class, one of several, or a value."""
    return (schema.input_kind == "tabular" and schema.task.name in ACTIVATIONS
            and all(c.kind in ("numeric", "categorical") for c in schema.columns or ()))


@dataclass
class FittedTrees:
    """Trees converted to Keras, the design that names them (how many per output), the fit's seconds,
    what the Keras model was converted from (scikit-learn's estimator and the category encodings),
    and whether the boosting stopped because its time limit was spent."""

    model: keras.Model
    design: Design
    seconds: float
    estimator: object
    encodings: dict[str, np.ndarray]
    cut_short: bool = False


def fit_trees(schema: Schema, rows: Rows, seed: int, trees: int | None = None, encode: bool = True,
              seconds: float | None = None) -> FittedTrees:
    """Boosted trees fitted on `rows` and converted to Keras: at most MAX_TREES per class, stopped
    early on a tenth of the rows; or exactly `trees` (the refit on train + validation). `encode`:
    the categories' target encodings beside their ids. `seconds`: the boosting also stops, keeping
    the trees it has, once this long has passed since the fit began (at least one round runs)."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    started = time.monotonic()
    regression = schema.task.name == "regression"
    settings = dict(SETTINGS, n_estimators=MAX_TREES, random_state=seed)
    if trees is not None:
        settings.update(n_estimators=trees, n_iter_no_change=None)
    estimator = (GradientBoostingRegressor if regression else GradientBoostingClassifier)(**settings)
    encodings = target_encodings(schema, rows) if encode else {}
    limit = _TimeLimit(started + seconds) if seconds is not None else None
    estimator.fit(tree_inputs(rows.x, encodings), rows.y, monitor=limit)
    model = to_keras(estimator, rows.x, schema, encodings)
    hyperparameters = {"trees": int(estimator.n_estimators_), "max_depth": SETTINGS["max_depth"],
                       "learning_rate": SETTINGS["learning_rate"], "target_encoded_categories": len(encodings)}
    return FittedTrees(model, Design(FAMILY, hyperparameters), round(time.monotonic() - started, 2), estimator,
                       encodings, cut_short=bool(limit and limit.reached))


class _TimeLimit:
    """A monitor for scikit-learn's boosting (`fit(..., monitor=)`, called after each round): stop
    once time.monotonic() passes `deadline`; `reached` if that ended the boosting before its last round."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.reached = False

    def __call__(self, stage: int, estimator, state: dict) -> bool:
        self.reached = time.monotonic() > self.deadline and stage + 1 < estimator.n_estimators
        return self.reached


def learning_curves(fitted: FittedTrees, schema: Schema, metric: str, train: Rows,
                    validation: Rows) -> dict[str, list[float]]:
    """Per boosting round, the task's loss (log loss, or mean squared error) and the goal metric
    `metric` on the rows the trees were fitted on and on `validation`, named like a network's epoch
    logs (loss, val_loss, goal, val_goal), so the chosen trees' curves plot as a network's do."""
    curves: dict[str, list[float]] = {}
    for prefix, rows in (("", train), ("val_", validation)):
        y = np.asarray(rows.y)
        staged = [(schema.task.validation_loss(y, raw), schema.task.score(metric, y, raw))
                  for raw in staged_outputs(fitted, schema, rows.x)]
        curves[f"{prefix}loss"] = [float(loss) for loss, _ in staged]
        curves[f"{prefix}goal"] = [float(score) for _, score in staged]
    return curves


def staged_outputs(fitted: FittedTrees, schema: Schema, x):
    """The converted model's outputs on `x` after each boosting round: scikit-learn's staged
    predictions, laid out as the model lays them out."""
    estimator, matrix = fitted.estimator, tree_inputs(x, fitted.encodings)
    if schema.task.name == "regression":
        yield from (values.reshape(-1, 1) for values in estimator.staged_predict(matrix))
        return
    outputs = schema.task.n_outputs(len(schema.classes))
    for probabilities in estimator.staged_predict_proba(matrix):
        if schema.task.name == "binary":
            yield probabilities[:, 1:]
            continue
        laid_out = np.zeros((len(probabilities), outputs), "float32")  # classes the training rows lack: 0
        laid_out[:, estimator.classes_.astype(int)] = probabilities
        yield laid_out


def target_encodings(schema: Schema, rows: Rows) -> dict[str, np.ndarray]:
    """Per categorical input (in name order), a table: id -> its target encoding, scikit-learn's
    TargetEncoder fitted on `rows` (one value, or one per class the rows hold; an id the rows lack
    gets the overall mean). Not cross-fitted: its empirical-Bayes smoothing already pulls a rare
    category to the mean, validation judges the trees, and the folds' noise made worse splits
    (validation, mean of 3 seeds: hpc_jobs accuracy 0.836 not cross-fitted, 0.822 cross-fitted,
    0.812 without encodings; ames R2 0.914, 0.910, 0.899)."""
    from sklearn.preprocessing import TargetEncoder

    y = np.asarray(rows.y).reshape(-1)
    tables = {}
    for spec in sorted(schema.columns_of("categorical"), key=lambda spec: spec.input):
        encoder = TargetEncoder(target_type=TARGET_TYPES[schema.task.name])
        encoder.fit(np.asarray(rows.x[spec.input]).reshape(-1, 1), y)
        ids = np.arange(len(spec.vocabulary) + 1).reshape(-1, 1)  # 0: unknown or missing
        tables[spec.input] = encoder.transform(ids).astype("float32")
    return tables


def tree_inputs(x, encodings: dict[str, np.ndarray]) -> np.ndarray:
    """What the trees read: the model inputs as float32 columns, then each category's encoding."""
    looked_up = [encodings[name][np.asarray(x[name]).reshape(-1)] for name in encodings]
    return np.concatenate([feature_matrix(x), *looked_up], axis=1)


def feature_matrix(x) -> np.ndarray:
    """Model inputs (an array, or a dict of arrays in name order) side by side as float32 columns."""
    parts = [x[name] for name in sorted(x)] if isinstance(x, dict) else [x]
    return np.concatenate([np.asarray(p, dtype="float32").reshape(len(p), -1) for p in parts], axis=1)


def to_keras(estimator, example_x, schema: Schema, encodings: dict[str, np.ndarray]) -> keras.Model:
    """A Keras model computing `estimator`'s predictions on `tree_inputs` from inputs shaped like `example_x`."""
    stages = estimator.estimators_  # (stages, columns) regression trees, each adding learning_rate x leaf value
    outputs = schema.task.n_outputs(len(schema.classes))
    # a class column of the trees -> the model's output for it (multiclass: classes the training rows hold)
    output_of = [int(c) for c in estimator.classes_] if stages.shape[1] > 1 else [0]
    trees = [(stage[k].tree_, output_of[k]) for stage in stages for k in range(stages.shape[1])]
    paths = [_leaf_paths(tree) for tree, _ in trees]
    nodes = max(1, max(len(internal) for internal, _ in paths))
    leaves = max(len(leaf_list) for _, leaf_list in paths)
    feature = np.zeros((len(trees), nodes), "int32")
    threshold = np.zeros((len(trees), nodes), "float32")
    turns = np.zeros((len(trees), nodes, leaves), "float32")
    lefts = np.full((len(trees), leaves), -1.0, "float32")  # padding leaves are never reached
    values = np.zeros((len(trees) * leaves, outputs), "float32")
    for t, ((tree, k), (internal, leaf_list)) in enumerate(zip(trees, paths)):
        slot = {node: i for i, node in enumerate(internal)}
        for i, node in enumerate(internal):
            feature[t, i] = tree.feature[node]
            threshold[t, i] = _float32_at_most(tree.threshold[node])
        for j, (leaf, path) in enumerate(leaf_list):
            for node, went_left in path:
                turns[t, slot[node], j] = 1.0 if went_left else -1.0
            lefts[t, j] = sum(went_left for _, went_left in path)
            values[t * leaves + j, k] = estimator.learning_rate * tree.value[leaf].reshape(-1)[0]
    # The starting raw prediction (the prior's log-odds, or the mean): the estimator's own on one row
    # minus what its trees add there.
    first = {name: a[:1] for name, a in example_x.items()} if isinstance(example_x, dict) else example_x[:1]
    matrix = tree_inputs(first, encodings)
    raw = estimator.predict(matrix) if schema.task.name == "regression" else estimator.decision_function(matrix)
    base = np.full(outputs, -1e4)  # (classes the training rows lack: never predicted)
    base[output_of] = np.asarray(raw, "float64").reshape(-1)
    for tree, k in trees:
        base[k] -= estimator.learning_rate * tree.predict(matrix).reshape(-1)[0]

    if isinstance(example_x, dict):
        inputs = {name: keras.Input(shape=a.shape[1:], dtype=a.dtype.name, name=name) for name, a in example_x.items()}
        columns = [inputs[name] for name in sorted(inputs)]
        for name, table in encodings.items():
            lookup = keras.layers.Embedding(*table.shape, trainable=False, name=f"{name}_target_encoding",
                                            dtype="float32")
            columns.append(lookup(inputs[name]))
            lookup.set_weights([table])
    else:
        inputs = keras.Input(shape=np.shape(example_x)[1:], dtype="float32", name="features")
        columns = [inputs]
    layer = BoostedTrees(len(trees), nodes, leaves, outputs, ACTIVATIONS[schema.task.name], name="boosted_trees",
                         dtype="float32")
    out = layer(columns)
    layer.set_weights([feature, threshold, turns, lefts, values, base.astype("float32")])
    return keras.Model(inputs, out, name=f"{FAMILY}_{schema.source}")


def _leaf_paths(tree) -> tuple[list[int], list[tuple[int, list[tuple[int, bool]]]]]:
    """(internal nodes, [(leaf, [(ancestor, went left)])]) of a fitted scikit-learn tree."""
    internal, leaves = [], []
    stack = [(0, [])]
    while stack:
        node, path = stack.pop()
        left, right = tree.children_left[node], tree.children_right[node]
        if left == -1:
            leaves.append((node, path))
            continue
        internal.append(node)
        stack.append((right, path + [(node, False)]))
        stack.append((left, path + [(node, True)]))
    return internal, leaves


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 <= value: float32 inputs then go left exactly when scikit-learn sends them left."""
    rounded = np.float32(value)
    return rounded if float(rounded) <= value else np.nextafter(rounded, np.float32(-np.inf))
