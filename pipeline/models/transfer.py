"""Pretrained networks as backbones: Keras applications (ImageNet weights, a local weights file,
or none) and models this tool exported before (a `.keras` file or a registered MLflow model),
cut below their head. Freezing for the first training phase and unfreezing the top layers for
the second (batch norm layers stay frozen and run in inference mode throughout).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import DesignError
from pipeline.lazy import keras

BACKBONE = "backbone"
OWN_MODEL_PREFIX = "models:/"


@dataclass(frozen=True)
class Application:
    """One Keras application: its class, the pixel range it was trained on, its smallest input."""

    keras_name: str
    pixel_range: str  # "0-255" (its own preprocessing inside), "-1-1", or "caffe" (BGR, mean subtracted)
    min_size: int = 32
    options: dict = field(default_factory=dict)


APPLICATIONS = {
    "mobilenet_v3_small": Application("MobileNetV3Small", "0-255", options={"include_preprocessing": True}),
    "mobilenet_v3_large": Application("MobileNetV3Large", "0-255", options={"include_preprocessing": True}),
    "efficientnet_b0": Application("EfficientNetB0", "0-255"),
    "resnet50_v2": Application("ResNet50V2", "-1-1"),
    "vgg16": Application("VGG16", "caffe"),  # VGG-style: plain 3x3 conv blocks, good on small images
}
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)


def is_own_model(network: str) -> bool:
    """A model this tool exported: a registered MLflow model URI or a `.keras` file."""
    return network.startswith(OWN_MODEL_PREFIX) or network.endswith(".keras")


def check_network(network: str) -> str | None:
    """None if `network` names a backbone, else what is allowed."""
    if network in APPLICATIONS or is_own_model(network):
        return None
    return (f"one of {', '.join(APPLICATIONS)}, a registered model (models:/<name>@champion or models:/<name>/<version>) "
            "or an exported .keras file")


def check_weights(weights: str) -> str | None:
    if weights in ("imagenet", "none") or weights.endswith(".h5"):
        return None
    return "imagenet (downloaded by Keras), none (random initial weights), or a local weights file (.weights.h5)"


def fixed_conv(x, kernel: np.ndarray, bias: np.ndarray, name: str):
    """A frozen 1x1 convolution with the given (in, out) matrix and bias: channel mixing and
    per-channel offsets as a plain Keras layer, so the model still loads in safe mode."""
    layer = keras.layers.Conv2D(kernel.shape[1], 1, trainable=False, name=name)
    out = layer(x)
    layer.set_weights([kernel.reshape(1, 1, *kernel.shape).astype("float32"), bias.astype("float32")])
    return out


def match_channels(x, channels: int, name: str):
    """Grey to colour by repeating the channel; colour to grey by averaging (a frozen 1x1 conv)."""
    have = int(x.shape[-1])
    if have == channels:
        return x
    if have == 1:
        return keras.layers.Concatenate(name=f"{name}_to_{channels}_channels")([x] * channels)
    if channels == 1:
        return fixed_conv(x, np.full((have, 1), 1.0 / have), np.zeros(1), f"{name}_to_grey")
    raise DesignError(f"the backbone reads {channels}-channel images; these have {have} channels")


def resized(x, height: int, width: int, name: str):
    if tuple(int(s) for s in x.shape[1:3]) == (height, width):
        return x
    return keras.layers.Resizing(height, width, name=f"{name}_resize")(x)


def application_input(unit, app: Application, name: str):
    """Unit-range pixels ([0, 1]) to the range the application was trained on."""
    if app.pixel_range == "0-255":
        return keras.layers.Rescaling(255.0, name=f"{name}_pixels")(unit)
    if app.pixel_range == "-1-1":
        return keras.layers.Rescaling(2.0, offset=-1.0, name=f"{name}_pixels")(unit)
    # caffe: RGB in 0..255 -> BGR with the ImageNet mean taken off
    swap = np.zeros((3, 3))
    swap[[0, 1, 2], [2, 1, 0]] = 255.0
    return fixed_conv(unit, swap, -np.asarray(IMAGENET_MEAN_BGR), f"{name}_caffe")


def application(network: str, weights: str, input_shape: tuple[int, int, int]) -> keras.Model:
    """The application without its top, with ImageNet weights, a weights file, or random weights."""
    app = APPLICATIONS[network]
    source = None if weights == "none" else weights
    if source not in (None, "imagenet") and not Path(source).is_file():
        raise DesignError(f"model.backbone.weights: no weights file at {source}")
    try:
        model = getattr(keras.applications, app.keras_name)(include_top=False, weights=source,
                                                            input_shape=input_shape, **app.options)
    except Exception as error:  # a failed download, or a file for another network
        if source == "imagenet":
            raise DesignError(f"could not get the ImageNet weights of {app.keras_name} ({error}). Keras downloads "
                              "them once into ~/.keras/models; without internet, save them there or use "
                              "model.backbone.weights=<a local .weights.h5 file> (or none)") from error
        raise DesignError(f"model.backbone.weights: {source} does not fit {app.keras_name}: {error}") from error
    return keras.Model(model.input, model.output, name=BACKBONE)


@functools.cache
def own_model_file(network: str) -> Path:
    """The `.keras` file behind a registered MLflow model URI (downloaded once), or the path itself."""
    if not network.startswith(OWN_MODEL_PREFIX):
        path = Path(network)
        if not path.is_file():
            raise DesignError(f"model.backbone.network: no exported model at {network}")
        return path
    import mlflow

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=network))
    except Exception as error:
        raise DesignError(f"model.backbone.network: could not load {network} from the MLflow registry at "
                          f"{mlflow.get_tracking_uri()}: {error}") from error
    # the tool logs the exported model as the artifact `model` (artifacts/model.keras) of a pyfunc
    files = sorted(local.rglob("*.keras"), key=lambda f: (f.parent.name != "artifacts", str(f)))
    if not files:
        raise DesignError(f"model.backbone.network: {network} holds no .keras model")
    return files[0]


def own_backbone(network: str) -> tuple[keras.Model, float, float]:
    """An exported model cut below its head, and the (scale, offset) that turns unit-range pixels
    into the raw values its own first layer expects. Of an exported ensemble (the refit's seeded
    copies, or designs the search averaged), the first member is reused."""
    from pipeline.models.builder import load_model

    model = load_model(own_model_file(network))
    names = {layer.name for layer in model.layers}
    if "output" not in names and "member_0" in names:
        model = model.get_layer("member_0")
    if not any(layer.name == "output" for layer in model.layers):
        raise DesignError(f"{network} has no `output` layer (not a model this tool exported); cannot reuse it")
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise DesignError(f"{network} does not read images (inputs {[tuple(i.shape) for i in model.inputs]})")
    scaling = next((layer for layer in model.layers if layer.name == "rescale"), None)
    if scaling is None:
        raise DesignError(f"{network} does not rescale pixels in its first layer (it standardises its inputs), so "
                          "new images cannot be given to it in the units it was trained on")
    scale, offset = float(scaling.scale), float(scaling.offset)
    low = -1.0 if offset == -1.0 else 0.0  # the range its rescaling produced: [0, 1] or [-1, 1]
    # unit u -> its range r = low + (1 - low) u -> its raw units (r - offset) / scale
    cut = keras.Model(model.input, model.get_layer("output").input, name=BACKBONE)
    return cut, (1.0 - low) / scale, (low - offset) / scale


def find_backbone(model: keras.Model):
    """The backbone layer of a model (or of a model nested in it), or None."""
    for layer in model.layers:
        if layer.name == BACKBONE:
            return layer
        if isinstance(layer, keras.Model):
            found = find_backbone(layer)
            if found is not None:
                return found
    return None


def weight_layers(backbone) -> list:
    """The backbone's layers with weights that fine-tuning may train (batch norm excluded), in order."""
    return [layer for layer in backbone.layers
            if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]


def freeze(backbone) -> None:
    backbone.trainable = False


def unfreeze_top(backbone, count: int) -> tuple[int, int]:
    """Make the top `count` weight layers trainable, the rest (and every batch norm) frozen.
    Returns (unfrozen, of how many)."""
    layers = weight_layers(backbone)
    top = layers[max(0, len(layers) - count):]
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    for layer in top:
        layer.trainable = True
    return len(top), len(layers)


def trainable_count(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
