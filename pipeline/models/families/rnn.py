"""`rnn`: SimpleRNN/LSTM/GRU layers over the steps (image rows; word embeddings of a text).

Cells keep their own tanh/sigmoid activations (what cuDNN kernels expect); `activation` is
not used here. Only the last layer returns a single vector; `bidirectional` reads both ways.
"""

from typing import Literal

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import as_tokens, dropout, regularizer
from pipeline.models.registry import Family, register

CELLS = {"lstm": "LSTM", "gru": "GRU", "simple": "SimpleRNN"}


class RNNSpace(FamilySpace):
    cell: Choice[Literal["lstm", "gru", "simple"]] = choice("lstm", ["lstm", "gru"])
    layers: IntRange = int_range(1, 1, 2)
    units: Choice[PositiveInt] = choice(64, [32, 64, 128])
    bidirectional: Choice[bool] = choice(False, [False, True])


def build(x, hp: dict):
    x = as_tokens(x, "rnn")
    for i in range(hp["layers"]):
        last = i == hp["layers"] - 1
        layer = getattr(keras.layers, CELLS[hp["cell"]])(
            hp["units"], return_sequences=not last, kernel_initializer=hp["initializer"],
            kernel_regularizer=regularizer(hp), name=f"{hp['cell']}_{i}")
        if hp["bidirectional"]:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{hp['cell']}_{i}")
        x = dropout(layer(x), hp, f"{hp['cell']}_{i}_dropout")
    return x


FAMILY = register(Family(
    name="rnn", summary="LSTM/GRU/simple recurrent layers over the steps, optionally bidirectional",
    reads=("image", "sequence", "text"), space=RNNSpace, depth="layers", widths=("units",), build=build,
    searched_for=("sequence", "text"),
))
