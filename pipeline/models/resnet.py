"""`resnet`: a stem convolution, then stages of residual blocks with identity/projection skips.

Each stage after the first starts with a stride-2 block that halves the image and doubles the
filters (a 1x1 stride-2 projection on the skip path); a global pooling closes the body.
"""

import keras

from pipeline.models.blocks import check_image_depth, conv_bn_act, image_depth_limit, regularizer


def max_depth(input_shape: list[int]) -> int | None:
    """Stages that fit: the first keeps the size, each next halves it (stride-2 3x3, padding 1)."""
    return image_depth_limit(input_shape, unpooled=1)


def residual_block(x, filters: int, hp: dict, strides: int, name: str):
    shortcut = x
    y = conv_bn_act(x, filters, hp["kernel_size"], hp, name=f"{name}_conv0", strides=strides)
    y = conv_bn_act(y, filters, hp["kernel_size"], hp, name=f"{name}_conv1", act=False)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, padding="same", use_bias=False,
                                       kernel_initializer=hp["initializer"], kernel_regularizer=regularizer(hp),
                                       name=f"{name}_project")(x)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation(hp["activation"], name=f"{name}_out")(y)


def build_body(x, hp: dict):
    check_image_depth(x, "resnet", hp["stages"], "stages", max_depth(list(x.shape[1:])))
    x = conv_bn_act(x, hp["filters"], hp["kernel_size"], hp, name="stem")
    for stage in range(hp["stages"]):
        for block in range(hp["blocks_per_stage"]):
            strides = 2 if stage > 0 and block == 0 else 1
            x = residual_block(x, hp["filters"] * 2**stage, hp, strides, name=f"stage{stage}_block{block}")
    pool = keras.layers.GlobalAveragePooling2D if hp["pooling"] == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name="global_pool")(x)
    if hp["dropout"] > 0:
        x = keras.layers.Dropout(hp["dropout"], name="dropout")(x)
    return x
