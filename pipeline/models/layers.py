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
