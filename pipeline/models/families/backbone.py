"""`backbone`: a pretrained network (a Keras application or a model exported before) + a new head,
trained in two phases: the head on the frozen backbone, then the top layers too, at a lower rate.

`network` is a Keras application (mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0,
resnet50_v2, vgg16) or your own model: `models:/<name>@champion` (the MLflow registry) or an
exported `.keras` file, reused up to its head (loaded in safe mode). `weights` (applications):
`imagenet` (Keras downloads them once), a local `.weights.h5` file, or `none` (random weights:
the whole network trains from the start, in one phase). The backbone runs in inference mode
(batch norm statistics kept); its input size and pixel range are set by layers inside the model.
"""

from __future__ import annotations

from pydantic import model_validator

from pipeline.config.errors import KeyProblem
from pipeline.config.space import Choice, FamilySpace, FloatRange, IntRange, choice, float_range, int_range
from pipeline.lazy import keras
from pipeline.models import transfer
from pipeline.models.blocks import dense_block
from pipeline.models.registry import Family, FineTune, register


class BackboneSpace(FamilySpace):
    network: Choice[str] = choice("mobilenet_v3_small", ["mobilenet_v3_small"])
    weights: Choice[str] = choice("imagenet", ["imagenet"])
    # 0: the images' own size (raised to the network's smallest input, 32)
    image_size: Choice[int] = choice(0, [0])
    head_units: Choice[int] = choice(0, [0, 128])  # a Dense layer before the task head (0: none)
    # phase 2: the top layers with weights (batch norm excluded) trained with the head
    unfreeze_layers: IntRange = int_range(20, 1, 200)
    fine_tune_lr: FloatRange = float_range(0.1, 0.02, 0.5, log=True)  # times the phase-1 learning rate
    fine_tune_epochs: IntRange = int_range(10, 1, 50)

    @model_validator(mode="after")
    def _known(self) -> BackboneSpace:
        for network in self.network.choices:
            if problem := transfer.check_network(network):
                raise KeyProblem("model.backbone.network", network, problem)
        for weights in self.weights.choices:
            if problem := transfer.check_weights(weights):
                raise KeyProblem("model.backbone.weights", weights, problem)
        if min(self.image_size.choices) < 0 or min(self.head_units.choices) < 0:
            raise KeyProblem("model.backbone", self.model_dump(include={"image_size", "head_units"}),
                             "sizes of 0 or more")
        return self


def pretrained(hp: dict) -> bool:
    return transfer.is_own_model(hp["network"]) or hp["weights"] != "none"


def build(x, hp: dict):
    """`x`: images scaled to [0, 1] (the builder does it: `reads_pixels`)."""
    network = hp["network"]
    if transfer.is_own_model(network):
        backbone, scale, offset = transfer.own_backbone(network)
        height, width, channels = (int(s) for s in backbone.inputs[0].shape[1:])
        x = transfer.resized(transfer.match_channels(x, channels, "backbone"), height, width, "backbone")
        x = keras.layers.Rescaling(scale, offset=offset, name="backbone_pixels")(x)
    else:
        app = transfer.APPLICATIONS[network]
        height, width = input_size(list(x.shape[1:]), hp)
        x = transfer.resized(transfer.match_channels(x, 3, "backbone"), height, width, "backbone")
        x = transfer.application_input(x, app, "backbone")
        backbone = transfer.application(network, hp["weights"], (height, width, 3))
    if pretrained(hp):
        transfer.freeze(backbone)
        x = backbone(x, training=False)  # inference mode: batch norm keeps its statistics in both phases
    else:
        x = backbone(x)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="backbone_pool")(x)
    x = keras.layers.Dropout(hp["dropout"], name="head_dropout")(x) if hp["dropout"] > 0 else x
    return dense_block(x, hp["head_units"], hp, name="head_dense") if hp["head_units"] else x


def input_size(input_shape: list, hp: dict) -> tuple[int, int]:
    """(height, width) the application reads: `image_size`, or the images' own raised to its minimum."""
    if hp["image_size"]:
        return hp["image_size"], hp["image_size"]
    smallest = transfer.APPLICATIONS[hp["network"]].min_size
    return max(smallest, int(input_shape[0])), max(smallest, int(input_shape[1]))


def input_note(input_shape: list, hp: dict) -> str | None:
    """Says when the images are resized inside the model to what the network reads."""
    if transfer.is_own_model(hp["network"]) or len(input_shape) != 3:
        return None
    size = input_size(input_shape, hp)
    if size == tuple(int(s) for s in input_shape[:2]):
        return None
    why = "model.backbone.image_size" if hp["image_size"] else f"{hp['network']}'s smallest input"
    return f"{tuple(input_shape[:2])} images are resized to {size} inside the model ({why})"


def fine_tune(model, hp: dict) -> FineTune | None:
    """Phase 2 of a pretrained backbone: its top `unfreeze_layers` weight layers train too."""
    backbone = transfer.find_backbone(model)
    if backbone is None or not pretrained(hp):
        return None
    unfrozen, total = transfer.unfreeze_top(backbone, hp["unfreeze_layers"])
    return FineTune(f"the top {unfrozen} of {total} backbone layers with weights (batch norm kept frozen)",
                    float(hp["fine_tune_lr"]), int(hp["fine_tune_epochs"]))


FAMILY = register(Family(
    name="backbone", summary="a pretrained network (Keras application or your exported model) + a new head, "
                             "trained head first, then its top layers at a lower rate",
    reads=("image",), space=BackboneSpace, depth="unfreeze_layers", widths=("head_units",), build=build,
    reads_pixels=True, fine_tune=fine_tune, freezes=True, input_note=input_note,
))
