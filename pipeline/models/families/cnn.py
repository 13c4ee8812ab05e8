"""`cnn`: VGG-style blocks of k x k convolutions ('same' padding) closed by 2x2 pooling."""

from typing import Literal

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import check_image_depth, conv_bn_act, dense_block, image_depth_limit
from pipeline.models.registry import Family, register


class CNNSpace(FamilySpace):
    blocks: IntRange = int_range(2, 1, 3)
    filters: Choice[PositiveInt] = choice(32, [16, 32, 64])  # of the first block; doubling per block
    convs_per_block: Choice[PositiveInt] = choice(2, [1, 2])
    kernel_size: Choice[PositiveInt] = choice(3, [3, 5])
    pooling: Choice[Literal["max", "avg"]] = choice("max", ["max", "avg"])
    dense_units: Choice[PositiveInt] = choice(128, [64, 128])


def max_depth(input_shape: list[int]) -> int | None:
    """Blocks that fit: each halves the image, which must keep at least 1 pixel per side."""
    return image_depth_limit(input_shape)


def build(x, hp: dict):
    check_image_depth(x, "cnn", hp["blocks"], "pooling blocks", max_depth(list(x.shape[1:])))
    pool_layer = keras.layers.MaxPooling2D if hp["pooling"] == "max" else keras.layers.AveragePooling2D
    for b in range(hp["blocks"]):
        for c in range(hp["convs_per_block"]):
            x = conv_bn_act(x, hp["filters"] * 2**b, hp["kernel_size"], hp, name=f"block{b}_conv{c}")
        x = pool_layer(2, name=f"block{b}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return dense_block(x, hp["dense_units"], hp, name="dense")


FAMILY = register(Family(
    name="cnn", summary="VGG-style blocks of k x k convolutions + 2x2 pooling, filters doubling, a dense layer",
    reads=("image",), space=CNNSpace, depth="blocks", widths=("filters", "dense_units"), build=build,
    searched_for=("image",), initial_for=("image",), max_depth=max_depth,
))
