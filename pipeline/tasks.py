"""The four tasks, each one object: what the model outputs (head, loss, native Keras metrics), how
its outputs become labels, probabilities, scores and a predictions table, and how targets are
encoded. Every other module asks the task (``task_named(schema.task)``) instead of comparing
task names. Importing this module is cheap; Keras is loaded only when a head is built, scikit-learn when
something is scored.

Raw outputs are what the Keras model returns: a probability per row (binary, shape (n,) or
(n, 1)), per class (multiclass, (n, classes)) or per label (multilabel, (n, labels)), or a
value (regression).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.lazy import keras, scipy_optimize
from pipeline.lazy import sklearn_metrics as skm
from pipeline.objective import Objective

MEMBER_AVERAGE = "member_mean"  # the layer averaging an ensemble body's members (the training view stops before it)


class Task:
    """What one kind of prediction needs from the model and gives back."""

    name: ClassVar[str]
    goal_metrics: ClassVar[tuple[str, ...]]  # allowed as goal.metric, in the order shown to users
    output_kind: ClassVar[str]  # classes | multilabel | value
    single_label: ClassVar[bool] = False  # one class per row: stratified splits, confusion matrices
    predicts_value: ClassVar[bool] = False  # a number per row: residuals instead of classes
    multi_target: ClassVar[bool] = False  # several 0/1 target columns instead of one
    loss: ClassVar[str]
    compiled_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)  # what Keras logs when it lacks the goal metric
    native_metrics: ClassVar[dict[str, str]] = {}  # goal metric -> Keras metric class that computes it

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # -- the model's output ------------------------------------------------------------------
    def n_outputs(self, n_classes: int) -> int:
        return n_classes

    def head(self, x, n_classes: int, preprocessing: dict):
        raise NotImplementedError

    smooths_labels: ClassVar[bool] = False  # label smoothing applies (classification)

    def auto_label_smoothing(self, metric: str) -> float:
        """`train.label_smoothing: auto`'s share for this goal metric (0: none)."""
        return 0.0

    def training_loss(self, label_smoothing: float = 0.0):
        """The loss to compile: `loss`, or its label-smoothed form (targets pulled toward uniform)."""
        if label_smoothing and not self.smooths_labels:
            raise ValueError(f"label smoothing needs classes; {self.name} predicts values")
        return self.loss

    def native_metric(self, metric: str):
        """A Keras metric computing `metric` during fit (named `goal`), or None."""
        name = self.native_metrics.get(metric)
        return getattr(keras.metrics, name)(name="goal") if name else None

    def training_view(self, model):
        """The network the loss is computed on, sharing every weight with the exported model: the
        model itself, or, for an ensemble body (`tabm`), its members' outputs before their average;
        (regression) the part that outputs standardised targets, per member for an ensemble body."""
        averaged = next((layer for layer in model.layers if layer.name == MEMBER_AVERAGE), None)
        return keras.Model(model.inputs, averaged.input, name=f"{model.name}_members") if averaged else model

    def training_targets(self, y: np.ndarray, preprocessing: dict) -> np.ndarray:
        """Targets as the training view's outputs are (regression: transformed and standardised)."""
        return y

    def outputs(self, training_outputs: np.ndarray, preprocessing: dict) -> np.ndarray:
        """The exported model's outputs from the training view's (the inverse of `training_targets`)."""
        return training_outputs

    # -- reading the model's outputs ---------------------------------------------------------
    def labels(self, raw: np.ndarray) -> np.ndarray:
        """Class decisions (class ids; 0/1 per label for multilabel)."""
        raise ValueError(f"no labels for task {self.name!r}")

    def score(self, metric: str, y_true: np.ndarray, raw: np.ndarray) -> float:
        """One metric; NaN/inf outputs (a diverged model) give the metric's worst value."""
        raw = np.asarray(raw, dtype="float64")
        if not np.all(np.isfinite(raw)):
            return Objective(metric).worst
        if metric not in self.goal_metrics:
            raise ValueError(f"metric {metric!r} is not defined for task {self.name!r}")
        return float(self._score(metric, np.asarray(y_true), raw))

    def _score(self, metric: str, y_true: np.ndarray, raw: np.ndarray) -> float:
        raise NotImplementedError

    def validation_loss(self, y_true: np.ndarray, raw: np.ndarray) -> float:
        """The loss on held-out rows as the report shows it (log loss, or mean squared error)."""
        raise NotImplementedError

    def ranking_loss(self, y_true: np.ndarray, raw: np.ndarray) -> float:
        """The loss that ranks designs tied on the goal metric (lower: better): the mean of `ranking_losses`."""
        return float(np.mean(self.ranking_losses(y_true, raw)))

    def ranking_losses(self, y_true: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """The ranking loss row by row (all infinite where an output is not finite), so that two models
        can be compared on the same rows, pair by pair."""
        raise NotImplementedError

    def report(self, y_true: np.ndarray, raw: np.ndarray, classes: list[str]) -> dict:
        """The task's standard metrics on held-out data, per class where there are classes."""
        raise NotImplementedError

    def example_scores(self, y_true: np.ndarray, raw: np.ndarray) -> pd.DataFrame:
        """Per row: prediction, confidence and `error` (higher: worse), to rank the worst examples."""
        raise NotImplementedError

    def predictions_frame(self, raw: np.ndarray, classes: list[str]) -> pd.DataFrame:
        """Readable predictions: `prediction` (class, labels or value) and a probability per class."""
        raise NotImplementedError

    # -- targets -----------------------------------------------------------------------------
    def encode_targets(self, frame: pd.DataFrame, targets: list[str], where: str,
                       known_classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
        """(model targets, class names) from target column(s); `known_classes` from the main source."""
        for column in targets:
            if frame[column].isna().any():
                row = int(np.flatnonzero(frame[column].isna().to_numpy())[0])
                raise DataError(f"{where}: target column '{column}' has a missing value at row {row}")
        return self._encode(frame, targets, where, known_classes)

    def _encode(self, frame, targets, where, known_classes):
        raise NotImplementedError

    def positives(self, y: np.ndarray) -> int | None:
        """How many rows of `y` are positive, for a binary task (None for the others): an AUC's
        standard error depends on it."""
        return None

    def constant_outputs(self, y_train: np.ndarray, rows: int, n_outputs: int) -> np.ndarray:
        """What a model that ignores its inputs would output: the training prior (or mean) on every row."""
        raise NotImplementedError

    def target_statistics(self, y_train: np.ndarray, transform: str = "auto") -> dict:
        """What the head needs from the training targets (regression: transform, mean and spread)."""
        return {}

    def dtype(self) -> str:
        return "int64"


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibrated_log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Log loss of (n, classes) probabilities after the one temperature that fits these rows best
    (p ** (1/T), renormalised; Guo et al. 2017). Designs then compare on how well they separate the
    classes, not on how confident their training made them: label smoothing and averaging lower
    confidence, which plain log loss punishes even where every row is right (Ashukha et al. 2020,
    "calibrated log-likelihood")."""
    return float(np.mean(calibrated_log_losses(y, probabilities)))


def calibrated_log_losses(y: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """`calibrated_log_loss` row by row (one temperature for all rows; infinite if any probability is not)."""
    probabilities = np.asarray(probabilities, dtype="float64")
    true_class = np.asarray(y, dtype="int64").reshape(-1)
    if not np.all(np.isfinite(probabilities)):
        return np.full(len(true_class), np.inf)
    log_p = np.log(np.clip(probabilities, 1e-12, 1.0))
    rows = np.arange(len(true_class))

    def losses(log_inverse_temperature: float) -> np.ndarray:
        logits = log_p * np.exp(log_inverse_temperature)
        logits -= logits.max(axis=1, keepdims=True)
        return np.log(np.exp(logits).sum(axis=1)) - logits[rows, true_class]

    # convex in 1/T, so unimodal in its logarithm: a bounded scalar search finds the minimum (T = 1: unchanged)
    fitted = scipy_optimize.minimize_scalar(lambda t: float(np.mean(losses(t))), bounds=(np.log(0.05), np.log(20.0)),
                                            method="bounded")
    unchanged = losses(0.0)
    return losses(fitted.x) if fitted.fun < np.mean(unchanged) else unchanged


class _SingleLabel(Task):
    """Binary and multiclass: one class per row."""

    single_label = True
    goal_metrics = ("accuracy", "balanced_accuracy", "macro_f1", "auc")

    def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """(n, classes) probabilities."""
        raise NotImplementedError

    def ranking_losses(self, y_true, raw):
        return calibrated_log_losses(y_true, self.probabilities(raw))

    def _score(self, metric, y_true, raw):
        if metric == "auc":
            try:
                return self._auc(y_true, raw)
            except ValueError:  # a class absent from a small split: AUC is undefined
                return float("nan")
        labels = self.labels(raw)
        if metric == "accuracy":
            return skm.accuracy_score(y_true, labels)
        if metric == "balanced_accuracy":
            return skm.balanced_accuracy_score(y_true, labels)
        return skm.f1_score(y_true, labels, average="macro", zero_division=0)

    def report(self, y_true, raw, classes):
        raw = np.asarray(raw, dtype="float64")
        labels = self.labels(raw)
        result = {
            "accuracy": self.score("accuracy", y_true, raw),
            "macro_f1": float(skm.f1_score(y_true, labels, average="macro", zero_division=0)),
            "weighted_f1": float(skm.f1_score(y_true, labels, average="weighted", zero_division=0)),
            "roc_auc": self.score("auc", y_true, raw),
            "log_loss": self.validation_loss(y_true, raw),
            "balanced_accuracy": self.score("balanced_accuracy", y_true, raw),
        }
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            y_true, labels, labels=list(range(len(classes))), zero_division=0)
        result["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                               for name, p, r, f, s in zip(classes, precision, recall, f1, support)}
        return result

    def example_scores(self, y_true, raw):
        probs = self.probabilities(np.asarray(raw, dtype="float64"))
        p_true = probs[np.arange(len(y_true)), y_true]
        return pd.DataFrame({"predicted_id": self.labels(raw), "confidence": probs.max(axis=1), "p_true": p_true,
                             "error": 1.0 - p_true})

    def predictions_frame(self, raw, classes):
        probs = self.probabilities(np.asarray(raw))
        frame = pd.DataFrame(probs, columns=[f"prob_{c}" for c in classes])
        frame.insert(0, "prediction", np.asarray(classes)[self.labels(raw)])
        return frame

    def _encode(self, frame, targets, where, known_classes):
        labels = frame[targets[0]]
        if known_classes is not None:
            index = {c: i for i, c in enumerate(known_classes)}
            text = labels.astype(str)
            unknown = ~text.isin(list(index))
            if unknown.any():
                row = int(np.flatnonzero(unknown.to_numpy())[0])
                raise DataError(f"{where}: target '{targets[0]}' holds {labels.iloc[row]!r} at row {row}, a class "
                                f"the main data does not have ({', '.join(known_classes)})")
            return text.map(index).to_numpy(dtype="int64"), list(known_classes)
        classes = sorted(labels.unique(), key=lambda v: (str(type(v)), v))
        self._check_classes(classes, targets[0], where)
        index = {c: i for i, c in enumerate(classes)}
        return labels.map(index).to_numpy(dtype="int64"), [str(c) for c in classes]

    def _check_classes(self, classes: list, target: str, where: str) -> None:
        if len(classes) < 2:
            raise DataError(f"{where}: target '{target}' has a single class; nothing to learn")


class BinaryTask(_SingleLabel):
    name = "binary"
    output_kind = "classes"
    loss = "binary_crossentropy"
    native_metrics = {"accuracy": "BinaryAccuracy"}
    smooths_labels = True

    def training_loss(self, label_smoothing=0.0):
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing) if label_smoothing else self.loss

    def n_outputs(self, n_classes):
        return 1

    def head(self, x, n_classes, preprocessing):
        return keras.layers.Dense(1, activation="sigmoid", name="output", dtype="float32")(x)

    def labels(self, raw):
        return (np.asarray(raw).reshape(-1) >= 0.5).astype("int64")

    def probabilities(self, raw):
        positive = np.asarray(raw, dtype="float64").reshape(-1)
        return np.stack([1 - positive, positive], axis=1)

    def _auc(self, y_true, raw):
        return skm.roc_auc_score(y_true, raw.reshape(-1))

    def positives(self, y):
        return int(np.sum(np.asarray(y).reshape(-1) == 1))

    def constant_outputs(self, y_train, rows, n_outputs):
        return np.full((rows, 1), float(np.mean(y_train)))

    def validation_loss(self, y_true, raw):
        raw = np.asarray(raw, dtype="float64")
        if not np.all(np.isfinite(raw)):
            return float("inf")
        return _log_loss(np.asarray(y_true).reshape(-1), raw.reshape(-1))

    def _check_classes(self, classes, target, where):
        if len(classes) != 2:
            raise DataError(f"{where}: goal.task is binary but target '{target}' has {len(classes)} classes")


class MulticlassTask(_SingleLabel):
    name = "multiclass"
    output_kind = "classes"
    loss = "sparse_categorical_crossentropy"
    native_metrics = {"accuracy": "SparseCategoricalAccuracy"}
    smooths_labels = True

    def auto_label_smoothing(self, metric):
        # A goal decided by the top class gains from softer targets (Szegedy et al. 2016; Mueller et
        # al. 2019); AUC ranks the probabilities, which smoothing distorts. Measured in the README.
        return 0.0 if metric == "auc" else 0.1

    def training_loss(self, label_smoothing=0.0):
        if not label_smoothing:
            return self.loss
        from pipeline.models.layers import SmoothedSparseCrossentropy

        return SmoothedSparseCrossentropy(label_smoothing)

    def head(self, x, n_classes, preprocessing):
        return keras.layers.Dense(n_classes, activation="softmax", name="output", dtype="float32")(x)

    def labels(self, raw):
        return np.asarray(raw).argmax(axis=-1)

    def probabilities(self, raw):
        return np.asarray(raw, dtype="float64")

    def constant_outputs(self, y_train, rows, n_outputs):
        prior = np.bincount(np.asarray(y_train, dtype="int64"), minlength=n_outputs) / len(y_train)
        return np.tile(prior, (rows, 1))

    def _auc(self, y_true, raw):
        probs = raw / raw.sum(axis=1, keepdims=True)
        return skm.roc_auc_score(y_true, probs, multi_class="ovr", labels=np.arange(raw.shape[1]))

    def validation_loss(self, y_true, raw):
        raw = np.asarray(raw, dtype="float64")
        if not np.all(np.isfinite(raw)):
            return float("inf")
        clipped = np.clip(raw, 1e-7, 1 - 1e-7)
        return float(skm.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True),
                                  labels=list(range(raw.shape[1]))))


class MultilabelTask(Task):
    name = "multilabel"
    multi_target = True
    goal_metrics = ("accuracy", "macro_f1", "auc")
    output_kind = "multilabel"
    loss = "binary_crossentropy"
    smooths_labels = True

    def training_loss(self, label_smoothing=0.0):
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing) if label_smoothing else self.loss

    def head(self, x, n_classes, preprocessing):
        return keras.layers.Dense(n_classes, activation="sigmoid", name="output", dtype="float32")(x)

    def labels(self, raw):
        return (np.asarray(raw) >= 0.5).astype("int64")

    def _score(self, metric, y_true, raw):
        if metric == "auc":
            try:
                return skm.roc_auc_score(y_true, raw, average="macro")
            except ValueError:
                return float("nan")
        labels = self.labels(raw)
        if metric == "accuracy":  # every label of a row right
            return skm.accuracy_score(y_true, labels)
        return skm.f1_score(y_true, labels, average="macro", zero_division=0)

    def validation_loss(self, y_true, raw):
        raw = np.asarray(raw, dtype="float64")
        if not np.all(np.isfinite(raw)):
            return float("inf")
        return _log_loss(np.asarray(y_true).reshape(raw.shape[0], -1), raw.reshape(raw.shape[0], -1))

    def ranking_losses(self, y_true, raw):
        """Every label as a binary decision, one temperature for all of them; a row's loss is its labels' mean."""
        raw = np.asarray(raw, dtype="float64")
        positive = raw.reshape(-1)
        per_label = calibrated_log_losses(np.asarray(y_true).reshape(-1), np.stack([1 - positive, positive], axis=1))
        return per_label.reshape(raw.shape[0], -1).mean(axis=1)

    def constant_outputs(self, y_train, rows, n_outputs):
        return np.tile(np.mean(y_train, axis=0), (rows, 1))

    def report(self, y_true, raw, classes):
        raw = np.asarray(raw, dtype="float64")
        labels = self.labels(raw)
        result = {
            "accuracy": self.score("accuracy", y_true, raw),
            "macro_f1": float(skm.f1_score(y_true, labels, average="macro", zero_division=0)),
            "weighted_f1": float(skm.f1_score(y_true, labels, average="weighted", zero_division=0)),
            "roc_auc": self.score("auc", y_true, raw),
            "log_loss": self.validation_loss(y_true, raw),
        }
        precision, recall, f1, support = skm.precision_recall_fscore_support(y_true, labels, zero_division=0)
        result["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                               for name, p, r, f, s in zip(classes, precision, recall, f1, support)}
        return result

    def example_scores(self, y_true, raw):
        raw = np.asarray(raw, dtype="float64")
        wrong = self.labels(raw) != y_true
        return pd.DataFrame({"labels_wrong": wrong.sum(axis=1), "error": np.abs(raw - y_true).mean(axis=1)})

    def predictions_frame(self, raw, classes):
        raw = np.asarray(raw)
        frame = pd.DataFrame(raw, columns=[f"prob_{c}" for c in classes])
        frame.insert(0, "prediction", [";".join(c for c, on in zip(classes, row) if on) for row in self.labels(raw)])
        return frame

    def _encode(self, frame, targets, where, known_classes):
        block = frame[targets]
        if not block.isin([0, 1]).all().all():
            raise DataError(f"{where}: multilabel targets {targets} must hold only 0 and 1")
        return block.to_numpy(dtype="float32"), list(targets)

    def dtype(self) -> str:
        return "float32"


class RegressionTask(Task):
    name = "regression"
    predicts_value = True
    goal_metrics = ("rmse", "mae", "r2")
    output_kind = "value"
    loss = "mean_squared_error"
    compiled_metrics = ()  # the goal metric is measured in the target's units by a callback
    TRAINING_OUTPUT = "value_scaled"
    SKEWED = 1.0  # auto: a positive target this skewed is modelled on the log scale

    def n_outputs(self, n_classes):
        return 1

    def head(self, x, n_classes, preprocessing):
        value = keras.layers.Dense(1, name=self.TRAINING_OUTPUT, dtype="float32")(x)
        # The network learns standardised (log) targets; these layers map back to the target's units.
        scale, offset = preprocessing["target_std"], preprocessing["target_mean"]
        if preprocessing.get("target_transform") == "log":
            logged = keras.layers.Rescaling(scale, offset=offset, name="value_log", dtype="float32")(value)
            return keras.layers.Activation("exponential", name="value", dtype="float32")(logged)
        return keras.layers.Rescaling(scale, offset=offset, name="value", dtype="float32")(value)

    def training_view(self, model):
        return keras.Model(model.inputs, model.get_layer(self.TRAINING_OUTPUT).output, name=f"{model.name}_training")

    def training_targets(self, y, preprocessing):
        values = np.log(y) if preprocessing.get("target_transform") == "log" else np.asarray(y, dtype="float64")
        return ((values - preprocessing["target_mean"]) / preprocessing["target_std"]).astype("float32")

    def outputs(self, training_outputs, preprocessing):
        values = np.asarray(training_outputs, dtype="float64") * preprocessing["target_std"] + \
            preprocessing["target_mean"]
        return np.exp(values) if preprocessing.get("target_transform") == "log" else values

    def _score(self, metric, y_true, raw):
        pred = raw.reshape(-1)
        if metric == "rmse":
            return np.sqrt(skm.mean_squared_error(y_true, pred))
        if metric == "mae":
            return skm.mean_absolute_error(y_true, pred)
        return skm.r2_score(y_true, pred)

    def validation_loss(self, y_true, raw):
        raw = np.asarray(raw, dtype="float64")
        if not np.all(np.isfinite(raw)):
            return float("inf")
        return float(skm.mean_squared_error(y_true, raw.reshape(-1)))

    def ranking_losses(self, y_true, raw):
        """Squared errors (their mean is the validation loss)."""
        raw = np.asarray(raw, dtype="float64").reshape(-1)
        if not np.all(np.isfinite(raw)):
            return np.full(len(raw), np.inf)
        return (raw - np.asarray(y_true, dtype="float64").reshape(-1)) ** 2

    def report(self, y_true, raw, classes):
        raw = np.asarray(raw, dtype="float64")
        residual = raw.reshape(-1) - np.asarray(y_true, dtype="float64")
        return {
            **{metric: self.score(metric, y_true, raw) for metric in self.goal_metrics},
            "residuals": {"mean": float(residual.mean()), "std": float(residual.std()),
                          "median": float(np.median(residual)), "p05": float(np.percentile(residual, 5)),
                          "p95": float(np.percentile(residual, 95)), "max_abs": float(np.abs(residual).max())},
        }

    def constant_outputs(self, y_train, rows, n_outputs):
        return np.full((rows, 1), float(np.mean(y_train)))

    def example_scores(self, y_true, raw):
        predicted = np.asarray(raw, dtype="float64").reshape(-1)
        return pd.DataFrame({"predicted": predicted, "error": np.abs(predicted - y_true)})

    def predictions_frame(self, raw, classes):
        return pd.DataFrame({"prediction": np.asarray(raw).reshape(-1)})

    def _encode(self, frame, targets, where, known_classes):
        values = pd.to_numeric(frame[targets[0]], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{where}: regression target '{targets[0]}' is not numeric at row {row}")
        infinite = np.isinf(values.to_numpy(dtype="float64"))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise DataError(f"{where}: regression target '{targets[0]}' is infinite at row {row}")
        return values.to_numpy(dtype="float32"), []

    def target_statistics(self, y_train, transform="auto"):
        y_train = np.asarray(y_train, dtype="float64")
        if transform == "auto":
            positive = bool(np.all(y_train > 0))
            skew = float(np.mean((y_train - y_train.mean()) ** 3) / (y_train.std() ** 3 or 1.0))
            transform = "log" if positive and skew > self.SKEWED else "none"
        if transform == "log" and not np.all(y_train > 0):
            from pipeline.errors import DesignError

            raise DesignError("train.target_transform is log, but some training targets are 0 or negative")
        values = np.log(y_train) if transform == "log" else y_train
        return {"target_transform": transform, "target_mean": float(values.mean()),
                "target_std": float(values.std() or 1.0)}

    def dtype(self) -> str:
        return "float32"


TASKS: dict[str, Task] = {task.name: task for task in (BinaryTask(), MulticlassTask(), MultilabelTask(),
                                                       RegressionTask())}


def task_named(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
