"""`tcn`: temporal convolutions over the steps (sequence steps, image rows, word embeddings).

Blocks of Conv1D ('same' padding), block b dilated `dilation_base` ** b times so the receptive
field grows with depth; a residual connection around each block after the first; a global
pooling closes the body, beside a linear path from the steps themselves.
"""

from typing import Literal

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import activation, as_tokens, dropout, regularizer
from pipeline.models.registry import Family, register


class TCNSpace(FamilySpace):
    blocks: IntRange = int_range(3, 1, 4)
    filters: Choice[PositiveInt] = choice(32, [16, 32, 64])
    kernel_size: Choice[PositiveInt] = choice(5, [3, 5, 7])
    dilation_base: Choice[PositiveInt] = choice(1, [1, 2])  # 1: no dilation; 2: block b looks 2**b steps apart
    pooling: Choice[Literal["max", "avg"]] = choice("avg", ["avg", "max"])  # global pooling at the end
    # the steps also reach the head directly: a linear model of the whole window (autoregression)
    linear_path: Choice[bool] = choice(True, [True, False])


def conv_block(x, hp: dict, dilation: int, name: str):
    """Conv1D -> [BatchNorm] -> activation -> [Dropout], plus the input when the widths match."""
    y = keras.layers.Conv1D(hp["filters"], hp["kernel_size"], padding="same", dilation_rate=dilation,
                            use_bias=not hp["batchnorm"], kernel_initializer=hp["initializer"],
                            kernel_regularizer=regularizer(hp), name=name)(x)
    if hp["batchnorm"]:
        y = keras.layers.BatchNormalization(name=f"{name}_bn")(y)
    y = dropout(activation(hp, f"{name}_act")(y), hp, f"{name}_dropout")
    return keras.layers.Add(name=f"{name}_residual")([x, y]) if x.shape[-1] == hp["filters"] else y


def build(x, hp: dict):
    steps = x = as_tokens(x, "tcn")
    for b in range(hp["blocks"]):
        x = conv_block(x, hp, hp["dilation_base"] ** b, name=f"tcn{b}")
    pool = keras.layers.GlobalAveragePooling1D if hp["pooling"] == "avg" else keras.layers.GlobalMaxPooling1D
    x = pool(name="global_pool")(x)
    if hp["linear_path"]:
        x = keras.layers.Concatenate(name="wide_and_deep")([x, keras.layers.Flatten(name="steps_flat")(steps)])
    return x


FAMILY = register(Family(
    name="tcn", summary="Conv1D blocks over the steps (dilation growing per block, residual), global pooling",
    reads=("image", "sequence", "text"), space=TCNSpace, depth="blocks", widths=("filters",), build=build,
    searched_for=("sequence", "text"), initial_for=("sequence", "text"),
))
