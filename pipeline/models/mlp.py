"""`mlp`: a stack of Dense layers, the first `units` wide, each next one half as wide."""

import keras

from pipeline.models.blocks import dense_block


def max_depth(input_shape: list[int]) -> int | None:
    return None


def build_body(x, hp: dict):
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i in range(hp["layers"]):
        x = dense_block(x, max(8, hp["units"] // 2**i), hp, name=f"dense_{i}")
    return x
