"""`rnn`: SimpleRNN/LSTM/GRU layers over the steps (image rows; one step per table column).

Cells keep their own tanh/sigmoid activations (what cuDNN kernels expect); `activation` is
not used here. Only the last layer returns a single vector; `bidirectional` reads both ways.
"""

import keras

from pipeline.models.blocks import as_tokens, regularizer

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple": keras.layers.SimpleRNN}


def max_depth(input_shape: list[int]) -> int | None:
    return None


def build_body(x, hp: dict):
    x = as_tokens(x, "rnn")
    for i in range(hp["layers"]):
        last = i == hp["layers"] - 1
        layer = CELLS[hp["cell"]](hp["units"], return_sequences=not last, kernel_initializer=hp["initializer"],
                                  kernel_regularizer=regularizer(hp), name=f"{hp['cell']}_{i}")
        if hp["bidirectional"]:
            layer = keras.layers.Bidirectional(layer, name=f"bi_{hp['cell']}_{i}")
        x = layer(x)
        if hp["dropout"] > 0:
            x = keras.layers.Dropout(hp["dropout"], name=f"{hp['cell']}_{i}_dropout")(x)
    return x
