"""`resnet`: a stem convolution, then stages of residual blocks with identity/projection skips.

Each stage after the first starts with a stride-2 block that halves the image and doubles the
filters (a 1x1 stride-2 projection on the skip path); a global pooling closes the body.
"""

from typing import Literal

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import check_image_depth, conv_bn_act, dropout, image_depth_limit, regularizer
from pipeline.models.registry import Family, register


class ResNetSpace(FamilySpace):
    stages: IntRange = int_range(2, 1, 3)
    blocks_per_stage: Choice[PositiveInt] = choice(1, [1, 2])
    filters: Choice[PositiveInt] = choice(32, [16, 32, 64])
    kernel_size: Choice[PositiveInt] = choice(3, [3])
    pooling: Choice[Literal["max", "avg"]] = choice("avg", ["avg", "max"])  # global pooling at the end


def max_depth(input_shape: list[int]) -> int | None:
    """Stages that fit: the first keeps the size, each next halves it (stride-2 3x3, padding 1)."""
    return image_depth_limit(input_shape, unpooled=1)


def residual_block(x, filters: int, hp: dict, strides: int, name: str):
    shortcut = x
    y = conv_bn_act(x, filters, hp["kernel_size"], hp, name=f"{name}_conv0", strides=strides)
    y = conv_bn_act(y, filters, hp["kernel_size"], hp, name=f"{name}_conv1", act=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False,
                                       kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp),
                                       name=f"{name}_project")(x)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation(hp["activation"], name=f"{name}_out")(y)


def build(x, hp: dict):
    check_image_depth(x, "resnet", hp["stages"], "stages", max_depth(list(x.shape[1:])))
    x = conv_bn_act(x, hp["filters"], hp["kernel_size"], hp, name="stem")
    for stage in range(hp["stages"]):
        for block in range(hp["blocks_per_stage"]):
            strides = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, hp["filters"] * 2**stage, hp, strides, name=f"stage{stage}_block{block}")
    pool = keras.layers.GlobalAveragePooling2D if hp["pooling"] == "avg" else keras.layers.GlobalMaxPooling2D
    return dropout(pool(name="global_pool")(x), hp, "dropout")


FAMILY = register(Family(
    name="resnet", summary="stages of residual blocks (projection skips on stride-2 stages), global pooling",
    reads=("image",), space=ResNetSpace, depth="stages", widths=("filters",), build=build,
    searched_for=("image",), max_depth=max_depth,
))
