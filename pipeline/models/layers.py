"""Custom Keras layers. Registered as serialisable, so saved models load in safe mode."""

import keras


@keras.saving.register_keras_serializable(package="pipeline")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a (batch, steps, dim) input."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=(input_shape[-2], input_shape[-1]), initializer="glorot_uniform", name="positions")

    def call(self, x):
        return x + keras.ops.expand_dims(keras.ops.cast(self.positions, x.dtype), 0)
