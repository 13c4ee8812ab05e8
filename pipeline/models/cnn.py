"""`cnn`: VGG-style blocks of k x k convolutions ('same' padding) closed by 2x2 pooling."""

import keras

from pipeline.models.blocks import check_image_depth, conv_bn_act, dense_block, image_depth_limit


def max_depth(input_shape: list[int]) -> int | None:
    """Blocks that fit: each halves the image, which must keep at least 1 pixel per side."""
    return image_depth_limit(input_shape)


def build_body(x, hp: dict):
    check_image_depth(x, "cnn", hp["blocks"], "pooling blocks", max_depth(list(x.shape[1:])))
    pool_layer = keras.layers.MaxPooling2D if hp["pooling"] == "max" else keras.layers.AveragePooling2D
    for b in range(hp["blocks"]):
        for c in range(hp["convs_per_block"]):
            x = conv_bn_act(x, hp["filters"] * 2**b, hp["kernel_size"], hp, name=f"block{b}_conv{c}")
        x = pool_layer(2, name=f"block{b}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return dense_block(x, hp["dense_units"], hp, name="dense")
