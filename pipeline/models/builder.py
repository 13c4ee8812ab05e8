"""Turn a design dict into a Keras model: input scaling -> family body -> task head."""

from __future__ import annotations

import keras

from pipeline.data import Schema
from pipeline.models import cnn, mlp
from pipeline.models.blocks import DesignError

FAMILIES = {"mlp": mlp.build_body, "cnn": cnn.build_body}


def build_model(design: dict, schema: Schema, preprocessing: dict) -> keras.Model:
    """Build the (uncompiled) model for `design`; `preprocessing` holds training-split statistics."""
    family = design["family"]
    if family not in FAMILIES:
        raise DesignError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    x = _input_scaling(inputs, schema, preprocessing)
    x = FAMILIES[family](x, design["hyperparameters"])
    outputs = _head(x, schema, preprocessing)
    return keras.Model(inputs, outputs, name=f"{family}_{schema.source}")


def _input_scaling(inputs, schema: Schema, preprocessing: dict):
    if schema.scaling["kind"] == "rescale":
        return keras.layers.Rescaling(schema.scaling["scale"], name="rescale")(inputs)
    return keras.layers.Normalization(
        mean=preprocessing["mean"], variance=preprocessing["variance"], name="standardize"
    )(inputs)


def _head(x, schema: Schema, preprocessing: dict):
    if schema.task == "regression":
        value = keras.layers.Dense(1, name="value_scaled")(x)
        # The Dense layer works in standardized units; Rescaling maps back to the target's units.
        return keras.layers.Rescaling(
            preprocessing["target_std"], offset=preprocessing["target_mean"], name="value"
        )(value)
    activation = "softmax" if schema.task == "multiclass" else "sigmoid"
    return keras.layers.Dense(schema.n_outputs, activation=activation, name="output")(x)


def loss_for(task: str) -> str:
    return {
        "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy",
        "multilabel": "binary_crossentropy",
        "regression": "mean_squared_error",
    }[task]


_NATIVE_GOAL_METRICS = {
    ("binary", "accuracy"): keras.metrics.BinaryAccuracy,
    ("multiclass", "accuracy"): keras.metrics.SparseCategoricalAccuracy,
    ("regression", "rmse"): keras.metrics.RootMeanSquaredError,
    ("regression", "mae"): keras.metrics.MeanAbsoluteError,
    ("regression", "r2"): keras.metrics.R2Score,
}


def has_native_goal_metric(task: str, metric: str) -> bool:
    """Whether Keras computes the goal metric itself (logged as `goal` / `val_goal`, no extra pass)."""
    return (task, metric) in _NATIVE_GOAL_METRICS


def compile_model(model: keras.Model, task: str, hp: dict, steps_per_epoch: int, epochs: int,
                  goal_metric: str | None = None) -> None:
    """Compile with the optimizer, learning rate and schedule named in `hp`.

    When Keras has the goal metric built in, it is compiled in under the name `goal`, so the
    epoch logs carry `goal` and `val_goal` at no extra cost.
    """
    total_steps = max(1, steps_per_epoch * epochs)
    lr = hp["learning_rate"]
    schedule = {
        "constant": lambda: lr,
        "cosine": lambda: keras.optimizers.schedules.CosineDecay(lr, decay_steps=total_steps, alpha=0.05),
        "exponential": lambda: keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=total_steps, decay_rate=0.05
        ),
    }[hp.get("lr_schedule", "constant")]()
    clipnorm = hp.get("clipnorm")
    optimizer = {
        "adam": lambda: keras.optimizers.Adam(schedule, clipnorm=clipnorm),
        "adamw": lambda: keras.optimizers.AdamW(schedule, clipnorm=clipnorm),
        "sgd": lambda: keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, clipnorm=clipnorm),
        "rmsprop": lambda: keras.optimizers.RMSprop(schedule, clipnorm=clipnorm),
    }[hp["optimizer"]]()
    native = _NATIVE_GOAL_METRICS.get((task, goal_metric))
    metrics = [native(name="goal")] if native else (["mae"] if task == "regression" else ["accuracy"])
    model.compile(optimizer=optimizer, loss=loss_for(task), metrics=metrics)


def layer_table(model: keras.Model) -> list[dict]:
    """One row per layer: name, type, output shape and parameter count."""
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = tuple(shape.shape) if shape is not None else ()
        rows.append({
            "layer": layer.name,
            "type": type(layer).__name__,
            "output_shape": str(shape).replace("None", "batch"),
            "params": int(layer.count_params()) if layer.built else 0,
        })
    return rows
