"""Turn a design dict into a Keras model: input scaling -> family body -> task head."""

from __future__ import annotations

import keras

from pipeline.config import FAMILY_SPACES
from pipeline.data import Schema
from pipeline.models import cnn, inception, mlp, resnet, rnn, transformer
from pipeline.models.blocks import DesignError

FAMILY_MODULES = {"mlp": mlp, "cnn": cnn, "resnet": resnet, "inception": inception, "rnn": rnn,
                  "transformer": transformer}


def max_depth(family: str, input_shape: list[int]) -> int | None:
    """The deepest `family` design that keeps a spatial size >= 1 for this input (None: no limit)."""
    return FAMILY_MODULES[family].max_depth(list(input_shape))


def fit_to_input(design: dict, schema: Schema) -> tuple[dict, str | None]:
    """`design` with its depth lowered to what the input allows, and a note when it was."""
    family = design["family"]
    depth_name = FAMILY_SPACES[family].depth
    cap = max_depth(family, schema.input_shape)
    depth = design["hyperparameters"][depth_name]
    if cap is None or depth <= cap:
        return design, None
    if cap < 1:
        raise DesignError(f"{family} cannot read a {schema.input_kind} input of shape {tuple(schema.input_shape)}")
    fitted = {**design, "hyperparameters": {**design["hyperparameters"], depth_name: cap}}
    return fitted, (f"{family}.{depth_name} {depth} would collapse a {tuple(schema.input_shape)} input "
                    f"(S_out = floor((S_in - S_f + 2P)/stride) + 1 per pooling); using {cap}")


def build_model(design: dict, schema: Schema, preprocessing: dict) -> keras.Model:
    """Build the (uncompiled) model for `design`; `preprocessing` holds training-split statistics."""
    family = design["family"]
    if family not in FAMILY_MODULES:
        raise DesignError(f"unknown family {family!r}; known: {', '.join(FAMILY_MODULES)}")
    hp = design["hyperparameters"]
    augmentation = design.get("augmentation", {}) if hp.get("augment") else {}
    inputs, x = model_inputs(schema, preprocessing, augmentation)
    x = FAMILY_MODULES[family].build_body(x, hp)
    outputs = _head(x, schema, preprocessing)
    return keras.Model(inputs, outputs, name=f"{family}_{schema.source}")


def model_inputs(schema: Schema, preprocessing: dict, augmentation: dict):
    """(Keras inputs, the tensor the family body reads): scaling, encodings and training-only augmentation.

    Arrays (images, sequences, numeric tables) enter as one `features` input; a table with
    categorical or text columns as one input per column group (see pipeline.features).
    """
    if schema.input_kind == "text":
        spec = schema.columns[0]
        inputs = keras.Input(shape=(spec["sequence_length"],), dtype="int32", name="features")
        x = keras.layers.Embedding(len(spec["vocabulary"]) + 2, schema.text_embed_dim, name="word_embedding")(inputs)
        if augmentation.get("word_dropout"):
            # Drops whole words (every embedding dimension of a step) in training only.
            x = keras.layers.Dropout(augmentation["word_dropout"], noise_shape=(None, spec["sequence_length"], 1),
                                     seed=augmentation.get("seed"), name="augment_word_dropout")(x)
        return inputs, x
    if any(c["kind"] != "numeric" for c in schema.columns):
        return _table_inputs(schema, preprocessing, augmentation)
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    x = _input_scaling(inputs, schema, preprocessing)
    if augmentation and schema.input_kind == "image":
        x = _augmentation(x, augmentation, schema)
    elif augmentation.get("noise"):
        x = keras.layers.GaussianNoise(augmentation["noise"], seed=augmentation.get("seed"), name="augment_noise")(x)
    return inputs, x


def augmentation_preview(schema: Schema, preprocessing: dict, settings: dict) -> keras.Model:
    """Input scaling + the image augmentation layers alone: call with training=True to see what the model sees."""
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    x = _augmentation(_input_scaling(inputs, schema, preprocessing), settings, schema)
    return keras.Model(inputs, x, name="augmentation_preview")


def categorical_width(schema: Schema, vocabulary: list) -> int | None:
    """Embedding size for a categorical column, or None for one-hot (auto: one-hot up to 16 values)."""
    categories = len(vocabulary) + 1
    if schema.categorical_encoding == "one_hot" or (schema.categorical_encoding == "auto" and categories <= 16):
        return None
    return int(min(16, max(2, round(1.6 * categories ** 0.56))))


def _table_inputs(schema: Schema, preprocessing: dict, augmentation: dict):
    inputs, parts = {}, []
    numeric = [c for c in schema.columns if c["kind"] == "numeric"]
    if numeric:
        inputs["numeric"] = keras.Input(shape=(len(numeric),), name="numeric")
        x = keras.layers.Normalization(mean=preprocessing["mean"], variance=preprocessing["variance"],
                                       name="standardize")(inputs["numeric"])
        if augmentation.get("noise"):
            x = keras.layers.GaussianNoise(augmentation["noise"], seed=augmentation.get("seed"), name="augment_noise")(x)
        parts.append(x)
    for spec in schema.columns:
        name = spec["input"]
        if spec["kind"] == "categorical":
            inputs[name] = keras.Input(shape=(1,), dtype="int32", name=name)
            width = categorical_width(schema, spec["vocabulary"])
            if width is None:
                parts.append(keras.layers.CategoryEncoding(len(spec["vocabulary"]) + 1, output_mode="one_hot",
                                                           name=f"{name}_one_hot")(inputs[name]))
            else:
                embedded = keras.layers.Embedding(len(spec["vocabulary"]) + 1, width, name=f"{name}_embedding")(inputs[name])
                parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
        elif spec["kind"] == "text":
            inputs[name] = keras.Input(shape=(spec["sequence_length"],), dtype="int32", name=name)
            embedded = keras.layers.Embedding(len(spec["vocabulary"]) + 2, schema.text_embed_dim, mask_zero=True,
                                              name=f"{name}_embedding")(inputs[name])
            parts.append(keras.layers.GlobalAveragePooling1D(name=f"{name}_mean")(embedded))
    x = keras.layers.Concatenate(name="columns")(parts) if len(parts) > 1 else parts[0]
    return inputs, x


def _augmentation(x, settings: dict, schema: Schema):
    """Random image transforms; Keras runs them only in training, so they travel inside the model."""
    seed = settings.get("seed")
    fill = dict(fill_mode="constant", fill_value=0.0)
    if settings.get("crop"):
        height, width = schema.input_shape[:2]
        crop = 1.0 - settings["crop"]
        # Crop a random window, then resize back, so that the body sees the declared size.
        x = keras.layers.RandomCrop(max(1, round(height * crop)), max(1, round(width * crop)), seed=seed,
                                    name="augment_crop")(x)
        x = keras.layers.Resizing(height, width, name="augment_crop_resize")(x)
    if settings.get("rotation"):
        x = keras.layers.RandomRotation(settings["rotation"], seed=seed, name="augment_rotation", **fill)(x)
    if settings.get("translation"):
        t = settings["translation"]
        x = keras.layers.RandomTranslation(t, t, seed=seed, name="augment_translation", **fill)(x)
    if settings.get("zoom"):
        x = keras.layers.RandomZoom(settings["zoom"], seed=seed, name="augment_zoom", **fill)(x)
    if settings.get("flip", "none") != "none":
        x = keras.layers.RandomFlip(settings["flip"], seed=seed, name="augment_flip")(x)
    # Brightness/contrast need the pixels' value range, which only rescaled images have.
    if schema.scaling["kind"] == "rescale":
        value_range = (-1.0, 1.0) if schema.scaling.get("offset") == -1.0 else (0.0, 1.0)
        if settings.get("brightness"):
            x = keras.layers.RandomBrightness(settings["brightness"], value_range=value_range, seed=seed,
                                              name="augment_brightness")(x)
        if settings.get("contrast"):
            x = keras.layers.RandomContrast(settings["contrast"], value_range=value_range, seed=seed,
                                            name="augment_contrast")(x)
    return x


def _input_scaling(inputs, schema: Schema, preprocessing: dict):
    if schema.scaling["kind"] == "none":
        return inputs
    if schema.scaling["kind"] == "rescale":
        return keras.layers.Rescaling(schema.scaling["scale"], offset=schema.scaling.get("offset", 0.0),
                                      name="rescale")(inputs)
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
        "plateau": lambda: lr,  # constant here; training adds ReduceLROnPlateau
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


def load_model(path) -> keras.Model:
    """Load a saved model in Keras safe mode (no arbitrary code); our custom layers are registered."""
    return keras.saving.load_model(path, safe_mode=True)


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
