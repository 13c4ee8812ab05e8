"""`cnn`: VGG-style blocks of k x k convolutions ('same' padding) closed by 2x2 pooling."""

import keras

from pipeline.models.blocks import DesignError, conv_bn_act, dense_block, halvings, spatial_sides


def max_depth(input_shape: list[int]) -> int | None:
    """Blocks that fit: each halves the image, which must keep at least 1 pixel per side."""
    return halvings(min(input_shape[:-1])) if len(input_shape) == 3 else 0


def build_body(x, hp: dict):
    if len(x.shape) != 4:
        raise DesignError(f"cnn needs image input (height, width, channels); got shape {tuple(x.shape[1:])}")
    fit = max_depth(spatial_sides(x) + [x.shape[-1]])
    if hp["blocks"] > fit:
        raise DesignError(f"cnn: {hp['blocks']} pooling blocks collapse a {spatial_sides(x)} input; at most {fit} fit")
    pool_layer = keras.layers.MaxPooling2D if hp["pooling"] == "max" else keras.layers.AveragePooling2D
    for b in range(hp["blocks"]):
        for c in range(hp["convs_per_block"]):
            x = conv_bn_act(x, hp["filters"] * 2**b, hp["kernel_size"], hp, name=f"block{b}_conv{c}")
        x = pool_layer(2, name=f"block{b}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return dense_block(x, hp["dense_units"], hp, name="dense")
