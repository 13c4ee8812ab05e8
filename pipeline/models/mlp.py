"""`mlp`: a stack of Dense layers, optionally with batch normalization and dropout."""

import keras

from pipeline.models.blocks import dense_block


def build_body(x, hp: dict):
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hp["units"]):
        x = dense_block(x, units, hp, name=f"dense_{i}")
    return x
