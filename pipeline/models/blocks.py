"""Small pieces the families share."""

import keras

from pipeline.errors import DesignError  # noqa: F401  (re-exported for the families)


def regularizer(hp: dict):
    return keras.regularizers.L2(hp["l2"]) if hp.get("l2") else None


def dense_block(x, units: int, hp: dict, name: str):
    """Dense -> [BatchNorm] -> activation -> [Dropout]."""
    x = keras.layers.Dense(
        units, use_bias=not hp["batchnorm"], kernel_initializer=hp["initializer"],
        kernel_regularizer=regularizer(hp), name=name,
    )(x)
    if hp["batchnorm"]:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.Activation(hp["activation"], name=f"{name}_act")(x)
    if hp["dropout"] > 0:
        x = keras.layers.Dropout(hp["dropout"], name=f"{name}_dropout")(x)
    return x
