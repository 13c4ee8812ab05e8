"""Custom Keras layers. Registered as serialisable, so saved models load in safe mode."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="pipeline")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a (batch, steps, dim) input."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=(input_shape[-2], input_shape[-1]), initializer="glorot_uniform", name="positions")

    def call(self, x):
        return x + keras.ops.expand_dims(keras.ops.cast(self.positions, x.dtype), 0)


@keras.saving.register_keras_serializable(package="pipeline")
class PiecewiseLinearEncoding(keras.layers.Layer):
    """Each number as its position within bins of the training values (Gorishniy et al. 2022,
    "On Embeddings for Numerical Features in Tabular Deep Learning"): for bin t with edges
    [b_t, b_t+1], (x - b_t) / (b_t+1 - b_t) clipped to [0, 1] (the first bin open below, the last
    above). A (batch, features) input becomes (batch, features * bins); the edges are fixed.
    """

    def __init__(self, edges, **kwargs):
        super().__init__(**kwargs)
        self.edges = [[float(v) for v in row] for row in edges]
        array = np.asarray(self.edges, dtype="float32")
        self.left = array[:, :-1]
        self.width = np.maximum(array[:, 1:] - array[:, :-1], 1e-6)
        bins = self.left.shape[1]
        self.floor = np.array([-np.inf] + [0.0] * (bins - 1), dtype="float32")
        self.ceiling = np.array([1.0] * (bins - 1) + [np.inf], dtype="float32")

    def call(self, x):
        ratio = (keras.ops.expand_dims(x, -1) - self.left) / self.width
        ratio = keras.ops.minimum(keras.ops.maximum(ratio, self.floor), self.ceiling)
        return keras.ops.reshape(ratio, (-1, self.left.shape[0] * self.left.shape[1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.left.shape[0] * self.left.shape[1])

    def get_config(self):
        return {**super().get_config(), "edges": self.edges}


@keras.saving.register_keras_serializable(package="pipeline")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on class ids with label smoothing (Keras's sparse loss has none): the one-hot
    target becomes (1 - s) one-hot + s / classes."""

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = y_pred.shape[-1]
        ids = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(keras.ops.one_hot(ids, classes), y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


TEST_TIME_VIEWS = {"none": 1, "flip": 2, "flip_and_crop": 4}


@keras.saving.register_keras_serializable(package="pipeline")
class TestTimeViews(keras.layers.Layer):
    """Test-time augmentation, first half: at inference, each image also as seen flipped left-right
    (`flip`) and, with `flip_and_crop`, its central 90% enlarged back, plain and flipped; the views
    are stacked along the batch. In training the images pass unchanged."""

    def __init__(self, mode: str = "flip", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x, training=None):
        if training or self.mode == "none":
            return x
        views = [x, keras.ops.flip(x, axis=2)]
        if self.mode == "flip_and_crop":
            height, width = x.shape[1], x.shape[2]
            top, left = max(1, round(height * 0.05)), max(1, round(width * 0.05))
            crop = keras.ops.image.resize(x[:, top:height - top, left:width - left, :], (height, width))
            views += [crop, keras.ops.flip(crop, axis=2)]
        return keras.ops.concatenate(views, axis=0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="pipeline")
class TestTimeMean(keras.layers.Layer):
    """Test-time augmentation, second half: the average of the outputs of each image's views."""

    def __init__(self, mode: str = "flip", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, outputs, training=None):
        views = TEST_TIME_VIEWS[self.mode]
        if training or views == 1:
            return outputs
        return keras.ops.mean(keras.ops.reshape(outputs, (views, -1, *outputs.shape[1:])), axis=0)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
