"""A design -> an uncompiled Keras model: input layers -> the family's body -> the task's head.

The first layers apply the input scaling fitted on the training split, so an exported model
accepts raw inputs. Compiling (optimizer, loss, schedule) happens in pipeline/training.py.
"""

from __future__ import annotations

import dataclasses

import keras

from pipeline.designs import Design
from pipeline.errors import DesignError
from pipeline.models import layers  # noqa: F401  (registers the custom layers for safe-mode loading)
from pipeline.models.preprocessing import input_layers
from pipeline.models.registry import FAMILIES, family
from pipeline.schema import Schema
from pipeline.tasks import MEMBER_AVERAGE


def max_depth(family_name: str, input_shape: list[int]) -> int | None:
    """The deepest design of a family that keeps a spatial size >= 1 for this input (None: no limit)."""
    return family(family_name).depth_limit(input_shape)


def fit_to_input(design: Design, schema: Schema) -> Design:
    """`design` with its depth lowered to what the input allows (and a note saying so)."""
    declared = family(design.family)
    cap = declared.depth_limit(schema.input_shape)
    depth = design.hyperparameters[declared.depth]
    if cap is None or depth <= cap:
        note = declared.input_note(schema.input_shape, design.hyperparameters) if declared.input_note else None
        return dataclasses.replace(design, note=note) if note else design
    if cap < 1:
        raise DesignError(f"{design.family} cannot read a {schema.input_kind} input of shape "
                          f"{tuple(schema.input_shape)}")
    note = (f"{design.family}.{declared.depth} {depth} would collapse a {tuple(schema.input_shape)} input "
            f"(S_out = floor((S_in - S_f + 2P)/stride) + 1 per pooling); using {cap}")
    return dataclasses.replace(design.with_hyperparameters(**{declared.depth: cap}), note=note)


def build_model(design: Design, schema: Schema) -> keras.Model:
    """Build the (uncompiled) model for `design`, whose `preprocessing` holds training-split statistics."""
    if design.family not in FAMILIES:
        raise DesignError(f"unknown family {design.family!r}; known: {', '.join(FAMILIES)}")
    hp = design.hyperparameters
    inputs, x = input_layers(schema, design.preprocessing, design.augmentation if hp.get("augment") else {},
                             hp.get("numeric_encoding", "standardize"))
    declared = family(design.family)
    test_time = hp.get("test_time_augmentation", "none") if schema.input_kind == "image" else "none"
    if test_time != "none":
        x = layers.TestTimeViews(test_time, name="test_time_views")(x)
    if declared.reads_pixels:
        x = unit_pixels(x, schema, declared.name)
    x = declared.build(x, hp)
    outputs = schema.task.head(x, len(schema.classes), design.preprocessing)
    if declared.ensembles:
        outputs = layers.MemberMean(name=MEMBER_AVERAGE, dtype="float32")(outputs)
    if test_time != "none":
        outputs = layers.TestTimeMean(test_time, name="test_time_mean", dtype="float32")(outputs)
    return keras.Model(inputs, outputs, name=f"{design.family}_{schema.source}")


def unit_pixels(x, schema: Schema, family_name: str):
    """Images in [0, 1], from what the schema's scaling made of them."""
    scaling = schema.scaling
    if schema.input_kind != "image" or scaling.kind != "rescale":
        raise DesignError(f"{family_name} reads images with known pixel values (an image folder, uint8 arrays or the "
                          f"digits); got {schema.input_kind} input scaled by `{scaling.kind}`")
    low, _ = scaling.value_range
    return x if low == 0.0 else keras.layers.Rescaling(0.5, offset=0.5, name="unit_pixels")(x)


def ensemble_of(models: list[keras.Model]) -> keras.Model:
    """One exportable model that averages the members' outputs."""
    shared = keras.tree.map_structure(
        lambda t: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name), models[0].input)
    # Renamed wrappers: members may share a name (same family), which one graph cannot hold.
    outputs = [keras.Model(m.input, m.output, name=f"member_{i}")(shared) for i, m in enumerate(models)]
    return keras.Model(shared, keras.layers.Average(name="average", dtype="float32")(outputs), name="ensemble")


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
