"""Small pieces the families share, and the output-size arithmetic that keeps designs valid."""

from __future__ import annotations

from pipeline.errors import DesignError
from pipeline.lazy import keras


def output_size(size: int, window: int, stride: int, padding: int = 0) -> int:
    """S_out = floor((S_in - S_f + 2P) / stride) + 1."""
    return (size - window + 2 * padding) // stride + 1


def halvings(size: int) -> int:
    """How many 2x2/stride-2 poolings a side of `size` takes before it would drop below 1."""
    count = 0
    while size >= 2:
        size, count = output_size(size, 2, 2), count + 1
    return count


def spatial_sides(x) -> list[int]:
    return [int(s) for s in x.shape[1:-1]]


def image_depth_limit(input_shape: list[int], unpooled: int = 0) -> int:
    """Stages an image takes when all but the first `unpooled` halve it (0 for non-image input)."""
    return unpooled + halvings(min(input_shape[:-1])) if len(input_shape) == 3 else 0


def check_image_depth(x, family: str, depth: int, unit: str, limit: int) -> None:
    """Refuse non-image input, and a depth whose poolings would shrink a side below 1 pixel."""
    if len(x.shape) != 4:
        raise DesignError(f"{family} needs image input (height, width, channels); got shape {tuple(x.shape[1:])}")
    if depth > limit:
        raise DesignError(f"{family}: {depth} {unit} collapse a {spatial_sides(x)} input; at most {limit} fit")


def regularizer(hp: dict):
    l1, l2 = float(hp.get("l1", 0.0)), float(hp.get("l2", 0.0))
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def activation(hp: dict, name: str):
    return keras.layers.Activation(hp["activation"], name=name)


def dropout(x, hp: dict, name: str):
    return keras.layers.Dropout(hp["dropout"], name=name)(x) if hp["dropout"] > 0 else x


def dense_block(x, units: int, hp: dict, name: str):
    """Dense -> [BatchNorm] -> activation -> [Dropout]."""
    x = keras.layers.Dense(
        units, use_bias=not hp["batchnorm"], kernel_initializer=hp["initializer"],
        kernel_regularizer=regularizer(hp), name=name,
    )(x)
    if hp["batchnorm"]:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return dropout(activation(hp, f"{name}_act")(x), hp, f"{name}_dropout")


def conv_bn_act(x, filters: int, kernel: int, hp: dict, name: str, strides: int = 1, act: bool = True):
    """Conv2D ('same' padding) -> [BatchNorm] -> [activation]."""
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=not hp["batchnorm"],
        kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp), name=name,
    )(x)
    if hp["batchnorm"]:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return activation(hp, f"{name}_act")(x) if act else x


def as_tokens(x, name: str):
    """A (steps, features) view of any input: image rows, sequence steps, or one token per column."""
    if len(x.shape) == 4:
        _, height, width, channels = x.shape
        return keras.layers.Reshape((height, width * channels), name=f"{name}_rows")(x)
    if len(x.shape) == 2:
        return keras.layers.Reshape((x.shape[1], 1), name=f"{name}_columns")(x)
    return x


def position_embedding(x, name: str):
    """Adds a learned vector per position (a custom layer, registered for safe-mode loading)."""
    from pipeline.models.layers import PositionEmbedding

    return PositionEmbedding(name=name)(x)
