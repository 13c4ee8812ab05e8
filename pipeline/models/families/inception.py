"""`inception`: modules of parallel 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches, concatenated.

The 1x1 convolutions before the 3x3/5x5 branches reduce the channels to half the branch width;
2x2 pooling between modules halves the image; a global average pooling closes the body.
"""

from typing import Literal

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import check_image_depth, conv_bn_act, dropout, image_depth_limit
from pipeline.models.registry import Family, register


class InceptionSpace(FamilySpace):
    blocks: IntRange = int_range(2, 1, 3)
    filters: Choice[PositiveInt] = choice(16, [8, 16, 32])  # per branch; the 1x1 reductions use half
    pooling: Choice[Literal["max", "avg"]] = choice("max", ["max", "avg"])


def max_depth(input_shape: list[int]) -> int | None:
    """Modules that fit: one pooling between each pair of modules."""
    return image_depth_limit(input_shape, unpooled=1)


def inception_module(x, filters: int, hp: dict, name: str):
    reduce = max(4, filters // 2)
    b1 = conv_bn_act(x, filters, 1, hp, name=f"{name}_1x1")
    b3 = conv_bn_act(conv_bn_act(x, reduce, 1, hp, name=f"{name}_3x3_reduce"), filters, 3, hp, name=f"{name}_3x3")
    b5 = conv_bn_act(conv_bn_act(x, reduce, 1, hp, name=f"{name}_5x5_reduce"), filters, 5, hp, name=f"{name}_5x5")
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = conv_bn_act(bp, filters, 1, hp, name=f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])


def build(x, hp: dict):
    check_image_depth(x, "inception", hp["blocks"], "modules", max_depth(list(x.shape[1:])))
    pool_layer = keras.layers.MaxPooling2D if hp["pooling"] == "max" else keras.layers.AveragePooling2D
    for b in range(hp["blocks"]):
        if b > 0:
            x = pool_layer(2, name=f"module{b}_downsample")(x)
        x = inception_module(x, hp["filters"] * 2**b, hp, name=f"module{b}")
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return dropout(x, hp, "dropout")


FAMILY = register(Family(
    name="inception", summary="modules of 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches, 2x2 pooling between",
    reads=("image",), space=InceptionSpace, depth="blocks", widths=("filters",), build=build,
    searched_for=("image",), max_depth=max_depth,
))
