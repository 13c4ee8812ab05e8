"""`mlp`: a stack of Dense layers, the first `units` wide, each next one half as wide."""

from pipeline.config.space import Choice, FamilySpace, IntRange, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import dense_block
from pipeline.models.registry import Family, register


class MLPSpace(FamilySpace):
    layers: IntRange = int_range(2, 1, 3)
    units: Choice[int] = choice(128, [64, 128, 256])


def build(x, hp: dict):
    if len(x.shape) > 2:
        x = keras.layers.Flatten(name="flatten")(x)
    for i in range(hp["layers"]):
        x = dense_block(x, max(8, hp["units"] // 2**i), hp, name=f"dense_{i}")
    return x


FAMILY = register(Family(
    name="mlp", summary="Dense layers, each half as wide as the one before (any input, flattened)",
    reads=("image", "tabular", "sequence", "text"), space=MLPSpace, depth="layers", widths=("units",),
    build=build, searched_for=("tabular", "text"), initial_for=("tabular", "text"),
))
