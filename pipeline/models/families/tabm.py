"""`tabm`: an MLP that is an ensemble of `members` MLPs sharing their weights (TabM-mini,
Gorishniy et al., "TabM: Advancing Tabular Deep Learning With Parameter-Efficient Ensembling",
ICLR 2025).

Each member scales the input features by its own vector (random signs at first), runs them
through the shared Dense layers, and has its own scale and shift before the shared head. Each
member is trained on its own loss; the exported model averages their predictions. A linear path
from each member's input reaches the head too, as in `mlp`.

Not in the default search: on the suite's tables its subset trials scored below `mlp`'s (it
converges in more epochs), so the search never chose it, and the refit's averaged copies of an
`mlp` already give the ensemble's gain. `-S model=tabm` runs it (with dropout 0.1: the members'
averaging regularises already).
"""

from pipeline.config.space import Choice, FamilySpace, IntRange, PositiveInt, choice, int_range
from pipeline.lazy import keras
from pipeline.models.blocks import dense_block
from pipeline.models.registry import Family, register


class TabMSpace(FamilySpace):
    layers: IntRange = int_range(3, 1, 4)
    units: Choice[PositiveInt] = choice(128, [64, 128, 256])  # every shared layer as wide
    members: Choice[PositiveInt] = choice(16, [8, 16, 32])
    linear_path: Choice[bool] = choice(True, [True, False])


def build(x, hp: dict):
    from pipeline.models.layers import EnsembleMembers, MemberAffine

    x = keras.layers.Flatten(name="flatten")(x) if len(x.shape) > 2 else x
    inputs = x = EnsembleMembers(hp["members"], name="members")(x)
    for i in range(hp["layers"]):
        x = dense_block(x, hp["units"], hp, name=f"dense_{i}")
    x = MemberAffine(name="member_affine")(x)
    return keras.layers.Concatenate(name="wide_and_deep")([x, inputs]) if hp["linear_path"] else x


FAMILY = register(Family(
    name="tabm", summary="an ensemble of MLPs sharing their Dense layers, each member trained on its own loss (TabM)",
    reads=("tabular",), space=TabMSpace, depth="layers", widths=("units",), build=build,
    ensembles=True,
))
