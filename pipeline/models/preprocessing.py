"""The model's input layers: value scaling, column encodings and training-only augmentation.

They sit inside the exported model, so it takes what `predict` gives it: pixels 0..255, raw
numbers, category and word ids (the string lookups run in pipeline/features.py).
"""

from __future__ import annotations

from pipeline.lazy import keras
from pipeline.schema import Schema


def input_layers(schema: Schema, preprocessing: dict, augmentation: dict, numeric_encoding: str = "standardize"):
    """(Keras inputs, the tensor the family body reads): scaling, encodings and training-only augmentation.

    Arrays (images, sequences, numeric tables) enter as one `features` input; a table with
    categorical or text columns as one input per column group (see pipeline.features).
    """
    if schema.input_kind == "text" and schema.columns[0].bag:
        inputs, x = ngram_bag(schema.columns[0], schema.text_embed_dim)
        return inputs, x
    if schema.input_kind == "text":
        spec = schema.columns[0]
        inputs = keras.Input(shape=(spec.sequence_length,), dtype="int32", name="features")
        x = keras.layers.Embedding(len(spec.vocabulary) + 2, schema.text_embed_dim, name="word_embedding")(inputs)
        if augmentation.get("word_dropout"):
            # Drops whole words (every embedding dimension of a step) in training only.
            x = keras.layers.Dropout(augmentation["word_dropout"], noise_shape=(None, spec.sequence_length, 1),
                                     seed=augmentation.get("seed"), name="augment_word_dropout")(x)
        return inputs, x
    if any(c.kind != "numeric" for c in schema.columns):
        return _table_inputs(schema, preprocessing, augmentation, numeric_encoding)
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    x = _input_scaling(inputs, schema, preprocessing)
    if schema.input_kind == "tabular" and numeric_encoding == "piecewise":
        x = _with_bins(inputs, x, preprocessing)
    if augmentation and schema.input_kind == "image":
        x = image_augmentation(x, augmentation, schema)
    elif augmentation.get("noise"):
        x = keras.layers.GaussianNoise(augmentation["noise"], seed=augmentation.get("seed"), name="augment_noise")(x)
    return inputs, x


def ngram_bag(spec, width: int):
    """({ids, weights} inputs, the bag's projection): a dense layer on the text's TF-IDF vector,
    computed as the weighted sum of one learned `width`-vector per n-gram present."""
    ids = keras.Input(shape=(spec.sequence_length,), dtype="int32", name=f"{spec.input}_ids")
    weights = keras.Input(shape=(spec.sequence_length,), name=f"{spec.input}_weights")
    vectors = keras.layers.Embedding(len(spec.vocabulary) + 1, width, name=f"{spec.input}_ngrams")(ids)
    bag = keras.layers.Dot(axes=(1, 1), name=f"{spec.input}_bag")([weights, vectors])
    return {ids.name: ids, weights.name: weights}, bag


def augmentation_preview(schema: Schema, preprocessing: dict, settings: dict):
    """Input scaling + the image augmentation layers alone: call with training=True to see what the model sees."""
    inputs = keras.Input(shape=tuple(schema.input_shape), name="features")
    x = image_augmentation(_input_scaling(inputs, schema, preprocessing), settings, schema)
    return keras.Model(inputs, x, name="augmentation_preview")


def categorical_width(schema: Schema, vocabulary: list) -> int | None:
    """Embedding size for a categorical column, or None for one-hot (auto: one-hot up to 16 values)."""
    categories = len(vocabulary) + 1
    if schema.categorical_encoding == "one_hot" or (schema.categorical_encoding == "auto" and categories <= 16):
        return None
    return int(min(16, max(2, round(1.6 * categories ** 0.56))))


def _with_bins(raw, standardized, preprocessing: dict):
    """The standardised numbers beside their piecewise-linear encoding in training-quantile bins."""
    from pipeline.models.layers import PiecewiseLinearEncoding

    binned = PiecewiseLinearEncoding(preprocessing["bins"], name="numeric_bins")(raw)
    return keras.layers.Concatenate(name="numeric_encoded")([standardized, binned])


def _table_inputs(schema: Schema, preprocessing: dict, augmentation: dict, numeric_encoding: str):
    inputs, parts = {}, []
    numeric = schema.columns_of("numeric")
    if numeric:
        inputs["numeric"] = keras.Input(shape=(len(numeric),), name="numeric")
        x = keras.layers.Normalization(mean=preprocessing["mean"], variance=preprocessing["variance"],
                                       name="standardize")(inputs["numeric"])
        if augmentation.get("noise"):
            x = keras.layers.GaussianNoise(augmentation["noise"], seed=augmentation.get("seed"), name="augment_noise")(x)
        if numeric_encoding == "piecewise":
            x = _with_bins(inputs["numeric"], x, preprocessing)
        parts.append(x)
    for spec in schema.columns:
        name = spec.input
        if spec.kind == "categorical":
            inputs[name] = keras.Input(shape=(1,), dtype="int32", name=name)
            width = categorical_width(schema, spec.vocabulary)
            if width is None:
                parts.append(keras.layers.CategoryEncoding(len(spec.vocabulary) + 1, output_mode="one_hot",
                                                           name=f"{name}_one_hot")(inputs[name]))
            else:
                embedded = keras.layers.Embedding(len(spec.vocabulary) + 1, width, name=f"{name}_embedding")(inputs[name])
                parts.append(keras.layers.Flatten(name=f"{name}_flat")(embedded))
        elif spec.kind == "text" and spec.bag:
            bag_inputs, bag = ngram_bag(spec, schema.text_embed_dim)
            inputs.update(bag_inputs)
            parts.append(bag)
        elif spec.kind == "text":
            inputs[name] = keras.Input(shape=(spec.sequence_length,), dtype="int32", name=name)
            embedded = keras.layers.Embedding(len(spec.vocabulary) + 2, schema.text_embed_dim, mask_zero=True,
                                              name=f"{name}_embedding")(inputs[name])
            parts.append(keras.layers.GlobalAveragePooling1D(name=f"{name}_mean")(embedded))
    x = keras.layers.Concatenate(name="columns")(parts) if len(parts) > 1 else parts[0]
    return inputs, x


def image_augmentation(x, settings: dict, schema: Schema):
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
    if schema.scaling.kind == "rescale":
        if settings.get("brightness"):
            x = keras.layers.RandomBrightness(settings["brightness"], value_range=schema.scaling.value_range,
                                              seed=seed, name="augment_brightness")(x)
        if settings.get("contrast"):
            x = keras.layers.RandomContrast(settings["contrast"], value_range=schema.scaling.value_range, seed=seed,
                                            name="augment_contrast")(x)
    return x


def _input_scaling(inputs, schema: Schema, preprocessing: dict):
    scaling = schema.scaling
    if scaling.kind == "none":
        return inputs
    if scaling.kind == "rescale":
        return keras.layers.Rescaling(scaling.scale, offset=scaling.offset or 0.0, name="rescale")(inputs)
    return keras.layers.Normalization(mean=preprocessing["mean"], variance=preprocessing["variance"],
                                      name="standardize")(inputs)
