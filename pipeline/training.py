"""Compiling and fitting a design: optimizer and schedule, the task's loss, the goal metric as a
per-epoch log entry, early stopping and time limits."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from pipeline import compute, inputs
from pipeline.config import GoalConfig, TrainConfig
from pipeline.designs import Design
from pipeline.models.layers import MemberLoss, MemberMeanMetric, member_outputs
from pipeline.prepared import Rows, Splits
from pipeline.tasks import Task

GOAL_LOG_KEY = "val_goal"


class GoalMetric(keras.callbacks.Callback):
    """Adds the goal metric on validation to the epoch logs (`val_goal`), for the metrics Keras
    lacks (balanced accuracy, macro F1, AUC, multilabel accuracy); the others are compiled into
    the model. Keras passes one logs dict through every callback, so early stopping, KerasTuner's
    objective and the history CSV see it when this callback is first.

    The train side is not re-measured each epoch: the diagnosis reads the goal metric on the
    training rows at the kept weights, in inference mode, once the run ends
    (`search.rounds.train_score`), so every epoch's budget goes to training.
    """

    def __init__(self, goal: GoalConfig, validation: Rows, preprocessing: dict | None = None):
        super().__init__()
        self.goal, self.validation = goal, validation
        self.preprocessing = preprocessing or {}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        task = self.goal.kind
        # The model being fitted may be the training view: its outputs go back to the target's units.
        raw = task.outputs(inputs.predict(self.model, self.validation.x), self.preprocessing)
        if member_outputs(self.model):  # a training view of an ensemble body: one output per member
            raw = raw.mean(axis=1)
        logs[GOAL_LOG_KEY] = task.score(self.goal.metric, self.validation.y, raw)


class Deadline(keras.callbacks.Callback):
    """Stops training cleanly (after the current epoch) once a wall-clock deadline passes."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline
        self.hit = False  # the run was cut short: its curves say little about the design

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() >= self.deadline:
            self.hit = True
            self.model.stop_training = True


class EpochLog(keras.callbacks.Callback):
    """Hands each finished epoch's logs to `log(epoch, logs)` (epoch from 1), e.g. to MLflow live.

    Put it after the callbacks that add to the logs (the goal metric). `log` is a plain function
    or a bound method; KerasTuner deep-copies a search's callbacks, and a function is copied as is.
    """

    def __init__(self, log):
        super().__init__()
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        self.log(epoch + 1, dict(logs or {}))


def monitored(goal: GoalConfig, monitor: str) -> tuple[str, str]:
    """(log key, mode) that early stopping and the plateau schedule watch."""
    return ("val_loss", "min") if monitor == "loss" else (GOAL_LOG_KEY, goal.objective.direction)


def training_callbacks(goal: GoalConfig, validation: Rows, patience: int, deadline: float | None = None,
                       monitor: str = "loss", preprocessing: dict | None = None) -> list:
    """Goal metric first when Keras lacks it (others read it), then NaN guard, early stopping, deadline.

    `monitor="loss"` stops on validation loss: on a small validation split the goal metric
    saturates (every design 1 error short) long before the model stops improving.
    """
    native = goal.kind.native_metrics.get(goal.metric) is not None
    callbacks = [] if native else [GoalMetric(goal, validation, preprocessing=preprocessing)]
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


def compile_model(model: keras.Model, task: Task, hp: dict, steps_per_epoch: int, epochs: int,
                  goal_metric: str | None = None) -> None:
    """Compile with the optimizer, learning rate and schedule named in `hp`, and the task's loss.

    When Keras has the goal metric built in, it is compiled in under the name `goal`, so the
    epoch logs carry `goal` and `val_goal` at no extra cost.
    """
    lr = float(hp["learning_rate"])
    total_steps = max(1, steps_per_epoch * epochs)
    schedule = {
        "constant": lambda: lr,
        "cosine": lambda: keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, alpha=0.05),
        "exponential": lambda: keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=total_steps, decay_rate=0.05
        ),
        "plateau": lambda: lr,  # constant here; training adds ReduceLROnPlateau
    }[hp.get("lr_schedule", "constant")]()
    clipnorm = hp.get("clipnorm")
    optimizer = {
        "adam": lambda: keras.optimizers.Adam(schedule, clipnorm=clipnorm),
        "adamw": lambda: keras.optimizers.AdamW(schedule, clipnorm=clipnorm),
        "sgd": lambda: keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, clipnorm=clipnorm),
        "rmsprop": lambda: keras.optimizers.RMSprop(schedule, clipnorm=clipnorm),
    }[hp["optimizer"]]()
    native = task.native_metric(goal_metric) if goal_metric else None
    loss = task.training_loss(float(hp.get("label_smoothing", 0.0)))
    if member_outputs(model):  # an ensemble body: each member's own loss; the goal of their average
        loss = MemberLoss(loss)
        metrics = [MemberMeanMetric(native)] if native else []  # else the GoalMetric callback measures it
    else:
        metrics = [native] if native else list(task.compiled_metrics)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=compute.CURRENT.jit_compile)


@dataclass
class Fitted:
    """A trained model (the exported form), its per-epoch logs, and how the run ended."""

    model: keras.Model
    curves: dict
    restored_epoch: int  # 1-based: the epoch whose weights were kept
    cut_short: bool  # stopped by the deadline, not by early stopping or the epoch budget
    # epochs each training phase ran up to the weights kept: (kept,) or, fine-tuned, (phase 1's kept, phase 2's)
    phase_epochs: tuple[int, ...] = ()
    fine_tuned: str | None = None  # what the second phase trained, when there was one


def start_second_phase(model: keras.Model, view: keras.Model, family_name: str, hp: dict, task: Task,
                       n_rows: int, goal_metric: str | None = None):
    """For a two-phase family (transfer learning): unfreeze what it trains next and recompile
    `view` at the lower learning rate. Returns the FineTune record, or None (one phase only)."""
    from pipeline.models.registry import family

    fine_tune = family(family_name).fine_tune
    tune = fine_tune(model, hp) if fine_tune else None
    if tune is not None:
        settings = {**hp, "learning_rate": float(hp["learning_rate"]) * tune.learning_rate_factor}
        compile_model(view, task, settings, steps_per_epoch(n_rows, hp["batch_size"]), tune.epochs, goal_metric)
    return tune


def improved(mode: str, value: float, reference: float) -> bool:
    return value < reference if mode == "min" else value > reference


def fit_design(design: Design, schema, splits: Splits, train: TrainConfig, goal: GoalConfig, *,
               epochs: int | None = None, deadline: float | None = None, verbose: int | None = None,
               on_epoch=None) -> Fitted:
    """Build, compile and fit `design` on the train split, as the `train` section says.

    `epochs` (default `train.epochs`), `deadline` and `verbose` (default `train.verbose`) override
    the section for search runs; `on_epoch(epoch, logs)` sees each epoch's logs as it ends.
    """
    from pipeline.models.builder import build_model

    epochs = epochs or train.epochs
    keras.utils.set_random_seed(train.seed)
    model = build_model(design, schema)
    task, hp, prep = schema.task, design.hyperparameters, design.preprocessing
    view = task.training_view(model)
    compile_model(view, task, hp, steps_per_epoch(len(splits.train), hp["batch_size"]), epochs, goal.metric)
    patience, monitor = train.early_stopping_patience, train.early_stopping_monitor

    def fit_phase(first_epoch: int, last_epoch: int, extra: list):
        """One training phase (epochs numbered on from the last): (history, early stopping, cut short)."""
        callbacks = training_callbacks(goal, splits.validation, patience, deadline, monitor=monitor,
                                       preprocessing=prep)
        history = inputs.fit(
            view, splits.train.x, task.training_targets(splits.train.y, prep), hp["batch_size"],
            validation_data=(splits.validation.x, task.training_targets(splits.validation.y, prep)),
            epochs=last_epoch, initial_epoch=first_epoch, seed=train.seed,
            callbacks=callbacks + extra + ([EpochLog(on_epoch)] if on_epoch else []),
            verbose=train.verbose if verbose is None else verbose,
        )
        stopping = next(c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping))
        return history, stopping, any(isinstance(c, Deadline) and c.hit for c in callbacks)

    history, stopping, cut_short = fit_phase(0, epochs, schedule_callbacks(hp, goal, patience, monitor))
    curves = history.history
    restored = (stopping.best_epoch + 1) if stopping.best_weights is not None else len(curves.get("loss", [])) or 1
    fitted = Fitted(model, curves, restored, cut_short, (restored,))
    tune = None if cut_short else start_second_phase(model, view, design.family, hp, task, len(splits.train),
                                                     goal.metric)
    if tune is None:
        return fitted
    # Phase 2 goes on from phase 1's kept weights; its weights are kept only if they do better.
    ran, kept_weights = len(curves.get("loss", [])), view.get_weights()
    more, fine, fitted.cut_short = fit_phase(ran, ran + tune.epochs, [])
    fitted.curves = {k: list(curves.get(k, [])) + list(more.history.get(k, [])) for k in {*curves, *more.history}}
    fitted.fine_tuned = tune.unfrozen
    _, mode = monitored(goal, monitor)
    if fine.best_weights is not None and improved(mode, fine.best, stopping.best):
        fitted.restored_epoch = fine.best_epoch + 1
        fitted.phase_epochs = (restored, fine.best_epoch + 1 - ran)
    else:
        view.set_weights(kept_weights)
    return fitted


def score(model: keras.Model, goal: GoalConfig, rows: Rows) -> float:
    """The goal metric of `model` on some rows."""
    return goal.kind.score(goal.metric, rows.y, inputs.predict(model, rows.x))


def score_and_loss(model: keras.Model, goal: GoalConfig, rows: Rows) -> tuple[float, float]:
    """(goal metric, loss) of a model on some rows: the loss breaks ties in the goal metric."""
    raw = inputs.predict(model, rows.x)
    return goal.kind.score(goal.metric, rows.y, raw), goal.kind.ranking_loss(rows.y, np.asarray(raw))


def ranking_losses(model: keras.Model, goal: GoalConfig, rows: Rows) -> np.ndarray:
    """A model's ranking loss on each of `rows`, to compare two models row by row."""
    return goal.kind.ranking_losses(rows.y, np.asarray(inputs.predict(model, rows.x)))


def refit(design: Design, schema, rows: Rows, train: TrainConfig, phase_epochs: tuple[int, ...] | list[int],
          verbose: int | None = None) -> keras.Model | None:
    """`design` trained afresh on `rows` (train + validation) for the epochs its early-stopped run
    kept, phase by phase (`phase_epochs`: one count, or two for a fine-tuned backbone); no rows
    are left to stop on. None if the loss went non-finite."""
    from pipeline.models.builder import build_model

    keras.utils.set_random_seed(train.seed)
    model = build_model(design, schema)
    task, hp = schema.task, design.hyperparameters
    view = task.training_view(model)
    # the plateau schedule needs validation rows to watch: a constant rate here
    settings = {**hp, "lr_schedule": "constant" if hp.get("lr_schedule") == "plateau" else hp.get("lr_schedule")}
    done = 0
    for phase, epochs in enumerate(phase_epochs):
        if phase == 0:
            compile_model(view, task, settings, steps_per_epoch(len(rows), hp["batch_size"]), epochs)
        elif start_second_phase(model, view, design.family, settings, task, len(rows)) is None:
            break
        history = inputs.fit(view, rows.x, task.training_targets(rows.y, design.preprocessing), hp["batch_size"],
                             epochs=done + epochs, initial_epoch=done, seed=train.seed,
                             callbacks=[keras.callbacks.TerminateOnNaN()],
                             verbose=train.verbose if verbose is None else verbose)
        losses = history.history.get("loss", [])
        if len(losses) != epochs or not np.all(np.isfinite(losses)):
            return None
        done += epochs
    return model
