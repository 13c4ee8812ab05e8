"""Fitting a design: the goal metric as a per-epoch log entry, early stopping, time limits."""

from __future__ import annotations

import time

import keras
import numpy as np

from pipeline import inputs, metrics
from pipeline.config import GoalConfig

GOAL_LOG_KEY = "val_goal"
TRAIN_GOAL_LOG_KEY = "goal"
TRAIN_SAMPLE_ROWS = 1024


class GoalMetric(keras.callbacks.Callback):
    """Adds the goal metric to the epoch logs: `val_goal` (validation) and `goal` (a train sample).

    Only for metrics Keras lacks (balanced accuracy, macro F1, AUC, multilabel accuracy); the
    others are compiled into the model. Keras passes one logs dict through every callback, so
    early stopping, KerasTuner's objective and the history CSV see it when this callback is first.
    """

    def __init__(self, goal: GoalConfig, x_val: np.ndarray, y_val: np.ndarray,
                 x_train: np.ndarray | None = None, y_train: np.ndarray | None = None, validation: bool = True):
        super().__init__()
        self.goal, self.x_val, self.y_val, self.validation = goal, x_val, y_val, validation
        self.x_train = None if x_train is None else inputs.head(x_train, TRAIN_SAMPLE_ROWS)
        self.y_train = None if y_train is None else y_train[:TRAIN_SAMPLE_ROWS]

    def _score(self, x, y) -> float:
        return metrics.compute(self.goal.task, self.goal.metric, y, inputs.predict(self.model, x))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self.validation:
            logs[GOAL_LOG_KEY] = self._score(self.x_val, self.y_val)
        if self.x_train is not None:
            logs[TRAIN_GOAL_LOG_KEY] = self._score(self.x_train, self.y_train)


class Deadline(keras.callbacks.Callback):
    """Stops training cleanly (after the current epoch) once a wall-clock deadline passes."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.hit = False

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() >= self.deadline:
            self.hit = True
            self.model.stop_training = True


def monitored(goal: GoalConfig, monitor: str) -> tuple[str, str]:
    """(log key, mode) that early stopping and the plateau schedule watch."""
    return ("val_loss", "min") if monitor == "loss" else (GOAL_LOG_KEY, goal.direction)


def training_callbacks(goal: GoalConfig, validation: tuple, patience: int, deadline: float | None = None,
                       train: tuple | None = None, exact_train_metric: bool = False, monitor: str = "loss") -> list:
    """Goal metric first when Keras lacks it (others read it), then NaN guard, early stopping, deadline.

    Keras's own train metric is a running mean over the epoch with dropout active, which reads
    low; `exact_train_metric` re-measures it on a train sample in inference mode, for diagnosis.
    `monitor="loss"` stops on validation loss: on a small validation split the goal metric
    saturates (every design 1 error short) long before the model stops improving.
    """
    from pipeline.models.builder import has_native_goal_metric

    native = has_native_goal_metric(goal.task, goal.metric)
    if not native:
        callbacks = [GoalMetric(goal, *validation, *(train or ()))]
    elif exact_train_metric and train is not None:
        callbacks = [GoalMetric(goal, *validation, *train, validation=False)]
    else:
        callbacks = []
    key, mode = monitored(goal, monitor)
    callbacks += [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(monitor=key, mode=mode, patience=patience, restore_best_weights=True),
    ]
    if deadline is not None:
        callbacks.append(Deadline(deadline))
    return callbacks


def schedule_callbacks(hp: dict, goal: GoalConfig, patience: int, monitor: str = "loss") -> list:
    """The `plateau` schedule: divide the learning rate by 5 when the monitored value stops improving."""
    if hp.get("lr_schedule") != "plateau":
        return []
    key, mode = monitored(goal, monitor)
    return [keras.callbacks.ReduceLROnPlateau(monitor=key, mode=mode, factor=0.2,
                                              patience=max(1, patience // 2), min_lr=1e-6)]


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return max(1, -(-n_rows // batch_size))


def fit_design(design: dict, schema, splits: dict, goal: GoalConfig, epochs: int, patience: int,
               seed: int, verbose: int = 2, deadline: float | None = None, monitor: str = "loss"):
    """Build, compile and fit `design` on the train split; returns (model, history dict)."""
    from pipeline.models import build_model, compile_model

    keras.utils.set_random_seed(seed)
    model = build_model(design, schema, design["preprocessing"])
    hp = design["hyperparameters"]
    x_train, y_train = splits["train"]
    compile_model(model, schema.task, hp, steps_per_epoch(len(y_train), hp["batch_size"]), epochs, goal.metric)
    history = inputs.fit(
        model, x_train, y_train, hp["batch_size"], validation_data=splits["validation"], epochs=epochs, seed=seed,
        callbacks=training_callbacks(goal, splits["validation"], patience, deadline, train=splits["train"],
                                     exact_train_metric=True, monitor=monitor)
        + schedule_callbacks(hp, goal, patience, monitor),
        verbose=verbose,
    )
    return model, history.history


def score(model: keras.Model, goal: GoalConfig, x: np.ndarray, y: np.ndarray) -> float:
    """The goal metric of `model` on (x, y)."""
    return metrics.compute(goal.task, goal.metric, y, inputs.predict(model, x))
