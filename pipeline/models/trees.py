"""Gradient-boosted trees as a Keras model: the candidate that tables have beside the networks.

scikit-learn fits the trees on the model's own inputs (numbers as the exported model receives
them, category ids as ordered numbers), with its own early stopping on a tenth of the rows.
`BoostedTrees` then evaluates them with Keras ops in the GEMM form of Hummingbird (Nakandala et
al., OSDI 2020): every split's comparison at once, then a path matrix that says which leaf each
row reaches. So the converted model takes the same inputs as a network, averages with one
(`ensemble_of`), and `predict`, serving and the registry keep taking one Keras model.
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


def reads(schema: Schema) -> bool:
    """Trees read tables of numbers and categories, for one class, one of several, or a value."""
    return (schema.input_kind == "tabular" and schema.task.name in ACTIVATIONS
            and all(c.kind in ("numeric", "categorical") for c in schema.columns or ()))


@dataclass
class FittedTrees:
    """Trees converted to Keras, the design that names them (how many per output), the fit's seconds."""

    model: keras.Model
    design: Design
    seconds: float


def fit_trees(schema: Schema, rows: Rows, seed: int, trees: int | None = None) -> FittedTrees:
    """Boosted trees fitted on `rows` and converted to Keras: at most MAX_TREES per class, stopped
    early on a tenth of the rows; or exactly `trees` (the refit on train + validation)."""
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    started = time.monotonic()
    regression = schema.task.name == "regression"
    settings = dict(SETTINGS, n_estimators=MAX_TREES, random_state=seed)
    if trees is not None:
        settings.update(n_estimators=trees, n_iter_no_change=None)
    estimator = (GradientBoostingRegressor if regression else GradientBoostingClassifier)(**settings)
    estimator.fit(feature_matrix(rows.x), rows.y)
    model = to_keras(estimator, rows.x, schema)
    hyperparameters = {"trees": int(estimator.n_estimators_), "max_depth": SETTINGS["max_depth"],
                       "learning_rate": SETTINGS["learning_rate"]}
    return FittedTrees(model, Design(FAMILY, hyperparameters), round(time.monotonic() - started, 2))


def feature_matrix(x) -> np.ndarray:
    """Model inputs (an array, or a dict of arrays in name order) side by side as float32 columns."""
    parts = [x[name] for name in sorted(x)] if isinstance(x, dict) else [x]
    return np.concatenate([np.asarray(p, dtype="float32").reshape(len(p), -1) for p in parts], axis=1)


def to_keras(estimator, example_x, schema: Schema) -> keras.Model:
    """A Keras model computing `estimator`'s predictions from inputs shaped like `example_x`."""
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
    matrix = feature_matrix(example_x)[:1]
    raw = estimator.predict(matrix) if schema.task.name == "regression" else estimator.decision_function(matrix)
    base = np.full(outputs, -1e4)  # (classes the training rows lack: never predicted)
    base[output_of] = np.asarray(raw, "float64").reshape(-1)
    for tree, k in trees:
        base[k] -= estimator.learning_rate * tree.predict(matrix).reshape(-1)[0]

    if isinstance(example_x, dict):
        inputs = {name: keras.Input(shape=a.shape[1:], dtype=a.dtype.name, name=name) for name, a in example_x.items()}
        columns = [inputs[name] for name in sorted(inputs)]
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
