"""`transformer`: pre-norm encoder blocks (multi-head self-attention + feed-forward) over tokens.

Tokens are sequence steps, image rows, word embeddings, or one per table column; each is
projected to `embed_dim` and given a learned position embedding. Global average pooling
closes the body.
"""

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import as_tokens, dropout, position_embedding, regularizer
from pipeline.models.registry import Family, register


class TransformerSpace(FamilySpace):
    blocks: IntRange = int_range(2, 1, 3)
    embed_dim: Choice[PositiveInt] = choice(64, [32, 64])
    heads: Choice[PositiveInt] = choice(4, [2, 4])
    ff_units: Choice[PositiveInt] = choice(128, [64, 128, 256])


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
    y = dropout(y, hp, f"{name}_dropout")
    y = keras.layers.Dense(dim, kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp),
                           name=f"{name}_ff1")(y)
    return keras.layers.Add(name=f"{name}_add1")([x, y])


def build(x, hp: dict):
    x = as_tokens(x, "tokens")
    x = keras.layers.Dense(hp["embed_dim"], kernel_initializer=hp["initializer"], name="token_embedding")(x)
    x = position_embedding(x, "position_embedding")
    for b in range(hp["blocks"]):
        x = encoder_block(x, hp, name=f"encoder{b}")
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    return keras.layers.GlobalAveragePooling1D(name="global_pool")(x)


FAMILY = register(Family(
    name="transformer", summary="pre-norm encoder blocks (self-attention + feed-forward) over tokens",
    reads=("image", "tabular", "sequence", "text"), space=TransformerSpace, depth="blocks",
    widths=("embed_dim", "ff_units"), build=build, searched_for=("sequence", "text"),
))
