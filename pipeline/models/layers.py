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
        ids = keras.ops.cast(y_true, "int32")
        if len(ids.shape) == len(y_pred.shape):  # ids with a trailing axis of 1, as Keras's sparse loss takes
            ids = keras.ops.squeeze(ids, -1)
        return keras.losses.categorical_crossentropy(keras.ops.one_hot(ids, y_pred.shape[-1]), y_pred,
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


# -- parameter-efficient ensembles (TabM, Gorishniy et al., ICLR 2025) -------------------------
# A body that ends in (batch, members, features) gives one prediction per member: the members
# share every Dense layer and differ by their own scalings. Each member is trained on its own
# loss (MemberLoss), so they stay diverse; the exported model averages their predictions.

@keras.saving.register_keras_serializable(package="pipeline")
class EnsembleMembers(keras.layers.Layer):
    """(batch, features) -> (batch, members, features): member m sees the features times its own
    trainable scaling, initialised to random signs (TabM-mini's multiplicative adapter)."""

    def __init__(self, members: int, **kwargs):
        super().__init__(**kwargs)
        self.members = int(members)

    def build(self, input_shape):
        def random_signs(shape, dtype=None):
            return keras.ops.sign(keras.initializers.RandomUniform(-1.0, 1.0)(shape, dtype=dtype))

        self.scalings = self.add_weight(shape=(self.members, input_shape[-1]), initializer=random_signs,
                                        name="scalings")

    def call(self, x):
        return keras.ops.expand_dims(x, 1) * keras.ops.cast(self.scalings, x.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "members": self.members}


@keras.saving.register_keras_serializable(package="pipeline")
class MemberAffine(keras.layers.Layer):
    """Per member, a trainable scale (from 1) and shift (from 0) of each feature: with the shared
    head after it, each member has its own output layer."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=tuple(input_shape[1:]), initializer="ones", name="scale")
        self.shift = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", name="shift")

    def call(self, x):
        return x * keras.ops.cast(self.scale, x.dtype) + keras.ops.cast(self.shift, x.dtype)


@keras.saving.register_keras_serializable(package="pipeline")
class MemberMean(keras.layers.Layer):
    """(batch, members, ...) -> (batch, ...): the members' predictions averaged."""

    def call(self, x):
        return keras.ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


def member_outputs(model) -> int:
    """How many members' predictions the model outputs side by side (a training view of an
    ensemble body); 0 when it outputs one prediction per row."""
    if any(isinstance(layer, MemberMean) for layer in model.layers):
        return 0
    return next((layer.members for layer in model.layers if isinstance(layer, EnsembleMembers)), 0)


class MemberLoss(keras.losses.Loss):
    """`loss` of each member's predictions (batch, members, ...) against the same targets, averaged
    over the members: the members learn independently, as in TabM, rather than as one averaged
    model (whose members would co-adapt)."""

    def __init__(self, loss, name: str = "member_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss = keras.losses.get(loss) if isinstance(loss, str) else loss

    def call(self, y_true, y_pred):
        y = keras.ops.repeat(keras.ops.expand_dims(y_true, 1), y_pred.shape[1], axis=1)
        if len(y.shape) < len(y_pred.shape):  # one target per row: a trailing axis (sparse losses take it too)
            y = keras.ops.expand_dims(y, -1)
        values = self.loss.call(y, y_pred) if isinstance(self.loss, keras.losses.Loss) else self.loss(y, y_pred)
        return keras.ops.mean(values, axis=1)


class MemberMeanMetric(keras.metrics.Metric):
    """`metric` of the members' averaged predictions (what the exported model outputs)."""

    def __init__(self, metric: keras.metrics.Metric, **kwargs):
        super().__init__(name=metric.name, dtype=metric.dtype, **kwargs)
        self.metric = metric

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.metric.update_state(y_true, keras.ops.mean(y_pred, axis=1), sample_weight=sample_weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()


# -- gradient-boosted trees as Keras ops (pipeline/models/trees.py fits and converts them) -------

@keras.saving.register_keras_serializable(package="pipeline")
class BoostedTrees(keras.layers.Layer):
    """Columns (batch, k_i) -> (batch, outputs): the sum of `trees` trees' leaf values, plus a base, through
    `activation`. Each tree's splits are compared at once (goes left: value <= threshold); leaf j is
    reached when the signed sum of its ancestors' decisions (+1 for a left turn, -1 for a right one)
    equals its number of left turns. Not trainable: the trees were fitted by scikit-learn."""

    def __init__(self, trees: int, nodes: int, leaves: int, outputs: int, activation: str = "linear", **kwargs):
        super().__init__(**{**kwargs, "trainable": False})
        self.trees, self.nodes, self.leaves, self.outputs = int(trees), int(nodes), int(leaves), int(outputs)
        self.activation = activation

    def build(self, input_shape):
        def weight(name, shape, dtype="float32"):
            return self.add_weight(shape=shape, initializer="zeros", dtype=dtype, trainable=False, name=name)

        self.feature = weight("feature", (self.trees, self.nodes), "int32")
        self.threshold = weight("threshold", (self.trees, self.nodes))
        self.turns = weight("turns", (self.trees, self.nodes, self.leaves))
        self.lefts = weight("lefts", (self.trees, self.leaves))
        self.values = weight("values", (self.trees * self.leaves, self.outputs))
        self.base = weight("base", (self.outputs,))

    def call(self, columns):
        ops = keras.ops
        x = ops.concatenate([ops.reshape(ops.cast(c, "float32"), (ops.shape(c)[0], -1)) for c in columns], axis=1)
        compared = ops.take(x, ops.reshape(self.feature, (-1,)), axis=1)  # (batch, trees * nodes)
        left = ops.cast(ops.less_equal(compared, ops.reshape(self.threshold, (-1,))), "float32")
        left = ops.reshape(left, (-1, self.trees, self.nodes))
        signed = ops.einsum("btn,tnl->btl", left, self.turns)
        leaf = ops.argmax(ops.cast(ops.equal(signed, self.lefts), "float32"), axis=-1)  # (batch, trees)
        rows = ops.take(self.values, leaf + ops.arange(self.trees, dtype=leaf.dtype) * self.leaves, axis=0)
        raw = ops.sum(rows, axis=1) + self.base
        if self.activation == "sigmoid":
            return ops.sigmoid(raw)
        if self.activation == "softmax":
            return ops.softmax(raw, axis=-1)
        return raw

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.outputs)

    def get_config(self):
        return {**super().get_config(), "trees": self.trees, "nodes": self.nodes, "leaves": self.leaves,
                "outputs": self.outputs, "activation": self.activation}
