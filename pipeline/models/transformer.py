"""`transformer`: pre-norm encoder blocks (multi-head self-attention + feed-forward) over tokens.

Tokens are sequence steps, image rows, or one per table column; each is projected to
`embed_dim` and given a learned position embedding. Global average pooling closes the body.
"""

import keras

from pipeline.models.blocks import PositionEmbedding, as_tokens, regularizer


def max_depth(input_shape: list[int]) -> int | None:
    return None


def encoder_block(x, hp: dict, name: str):
    dim = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm0")(x)
    y = keras.layers.MultiHeadAttention(
        hp["heads"], key_dim=max(4, dim // hp["heads"]), dropout=hp["dropout"],
        kernel_initializer=hp["initializer"], name=f"{name}_attention")(y, y)
    x = keras.layers.Add(name=f"{name}_add0")([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = keras.layers.Dense(hp["ff_units"], activation=hp["activation"], kernel_initializer=hp["initializer"],
                           kernel_regularizer=regularizer(hp), name=f"{name}_ff0")(y)
    if hp["dropout"] > 0:
        y = keras.layers.Dropout(hp["dropout"], name=f"{name}_dropout")(y)
    y = keras.layers.Dense(dim, kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp),
                           name=f"{name}_ff1")(y)
    return keras.layers.Add(name=f"{name}_add1")([x, y])


def build_body(x, hp: dict):
    x = as_tokens(x, "tokens")
    x = keras.layers.Dense(hp["embed_dim"], kernel_initializer=hp["initializer"], name="token_embedding")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    for b in range(hp["blocks"]):
        x = encoder_block(x, hp, name=f"encoder{b}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    return keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
