"""`mlp`: a stack of Dense layers, the first `units` wide, each next one half as wide."""

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import dense_block
from pipeline.models.registry import Family, register


class MLPSpace(FamilySpace):
    layers: IntRange = int_range(2, 1, 3)
    units: Choice[PositiveInt] = choice(128, [64, 128, 256])
    # the inputs also reach the head directly (wide & deep): never worse than a linear model
    linear_path: Choice[bool] = choice(True, [True, False])


def build(x, hp: dict):
    inputs = x = keras.layers.Flatten(name="flatten")(x) if len(x.shape) > 2 else x
    for i in range(hp["layers"]):
        x = dense_block(x, max(8, hp["units"] // 2**i), hp, name=f"dense_{i}")
    return keras.layers.Concatenate(name="wide_and_deep")([x, inputs]) if hp["linear_path"] else x


FAMILY = register(Family(
    name="mlp", summary="Dense layers, each half as wide as the one before, and a linear path beside them",
    reads=("image", "tabular", "sequence", "text", "ngrams"), space=MLPSpace, depth="layers", widths=("units",),
    build=build, searched_for=("tabular", "ngrams"), initial_for=("tabular", "ngrams"),
))
