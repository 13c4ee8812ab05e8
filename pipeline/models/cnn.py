"""`cnn`: VGG-style blocks of k x k convolutions ('same' padding) closed by 2x2 pooling."""

import keras

from pipeline.models.blocks import DesignError, dense_block, regularizer


def pooled_size(size: int, pool: int = 2, stride: int = 2, padding: int = 0) -> int:
    """S_out = floor((S_in - S_f + 2P) / stride) + 1."""
    return (size - pool + 2 * padding) // stride + 1


def max_blocks(spatial: list[int]) -> int:
    """How many pooling blocks fit before the smallest spatial side would drop below 1."""
    size, blocks = min(spatial), 0
    while size >= 2:
        size, blocks = pooled_size(size), blocks + 1
    return blocks


def build_body(x, hp: dict):
    spatial = list(x.shape[1:-1])
    if len(hp["filters"]) > max_blocks(spatial):
        raise DesignError(
            f"cnn: {len(hp['filters'])} pooling blocks collapse a {spatial} input; at most {max_blocks(spatial)} fit"
        )
    pool_layer = keras.layers.MaxPooling2D if hp["pooling"] == "max" else keras.layers.AveragePooling2D
    for b, filters in enumerate(hp["filters"]):
        for c in range(hp["convs_per_block"]):
            x = keras.layers.Conv2D(
                filters, hp["kernel_size"], padding="same", use_bias=not hp["batchnorm"],
                kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp),
                name=f"block{b}_conv{c}",
            )(x)
            if hp["batchnorm"]:
                x = keras.layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = keras.layers.Activation(hp["activation"], name=f"block{b}_act{c}")(x)
        x = pool_layer(2, name=f"block{b}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return dense_block(x, hp["dense_units"], hp, name="dense")
