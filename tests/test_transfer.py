"""Transfer learning: every Keras application builds offline (weights: none), a local weights file
is loaded, freezing and unfreezing set the trainable parameters as stated, a model trained on
one generated image set is reused as the backbone on another and beats training from scratch,
two-phase training and its refit, safe-mode save/load, and config and diagnosis handling."""

import dataclasses

import numpy as np
import pytest

from bench.transfer_bench import SOURCE_CLASSES, TARGET_CLASSES, config, shape_schema, shape_splits, train
from pipeline.config.errors import ConfigError
from pipeline.designs import DesignSpace, initial_design
from pipeline.errors import DesignError
from pipeline.models import transfer
from pipeline.models.builder import build_model, fit_to_input, load_model
from pipeline.models.families.backbone import fine_tune
from pipeline.schema import RESCALE_UNIT, Schema
from pipeline.search.diagnosis import RoundPlan, adjust
from pipeline.search.records import Diagnosis
from pipeline.tasks import task_named
from pipeline.training import refit, score


def image_schema(shape, classes=3):
    return Schema(source="t", task=task_named("multiclass"), input_kind="image", input_shape=list(shape),
                  features=["pixels"], scaling=RESCALE_UNIT, classes=[str(i) for i in range(classes)])


def backbone_design(*overrides):
    return initial_design(config("model=backbone", "model.backbone.weights=none", *overrides))


def pixels(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape)).astype("float32")


@pytest.mark.parametrize("network", sorted(transfer.APPLICATIONS))
@pytest.mark.parametrize("side", [32, 128])
def test_every_application_builds_without_weights_on_32_and_128_pixel_images(network, side):
    schema = image_schema((side, side, 3))
    model = build_model(backbone_design(f"model.backbone.network={network}"), schema)
    assert transfer.find_backbone(model) is not None
    out = model.predict(pixels(2, (side, side, 3)), verbose=0)
    assert out.shape == (2, 3) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4)


def test_small_grey_images_are_upsampled_to_colour_with_a_note():
    schema = image_schema((8, 8, 1))
    design = fit_to_input(backbone_design(), schema)
    assert design.note == "(8, 8) images are resized to (32, 32) inside the model (mobilenet_v3_small's smallest input)"
    model = build_model(design, schema)
    names = [layer.name for layer in model.layers]
    assert "backbone_to_3_channels" in names and "backbone_resize" in names
    assert model.predict(pixels(2, (8, 8, 1)), verbose=0).shape == (2, 3)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A MobileNetV3Small weights file (random weights, saved by the test), as one downloads them."""
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.weights.h5"
    transfer.application("mobilenet_v3_small", "none", (32, 32, 3)).save_weights(path)
    return path


def test_a_local_weights_file_is_loaded_and_the_backbone_starts_frozen(weights_file):
    saved = transfer.application("mobilenet_v3_small", str(weights_file), (32, 32, 3)).get_weights()
    model = build_model(backbone_design(f"model.backbone.weights={weights_file}"), image_schema((32, 32, 3)))
    backbone = transfer.find_backbone(model)
    assert all(np.array_equal(a, b) for a, b in zip(backbone.get_weights(), saved))
    # phase 1: only the head trains (dense output on the pooled 576 features)
    assert transfer.trainable_count(model) == 576 * 3 + 3


def test_unfreezing_the_top_layers_adds_exactly_their_parameters(weights_file):
    design = backbone_design(f"model.backbone.weights={weights_file}", "model.backbone.unfreeze_layers=5")
    model = build_model(design, image_schema((32, 32, 3)))
    head = transfer.trainable_count(model)
    tune = fine_tune(model, design.hyperparameters)
    backbone = transfer.find_backbone(model)
    top = transfer.weight_layers(backbone)[-5:]
    expected = sum(int(np.prod(w.shape)) for layer in top for w in layer.weights)
    assert transfer.trainable_count(model) == head + expected
    assert tune.unfrozen == f"the top 5 of {len(transfer.weight_layers(backbone))} backbone layers with weights " \
                            "(batch norm kept frozen)"
    assert tune.learning_rate_factor == pytest.approx(0.1) and tune.epochs == 10
    assert not any(layer.trainable for layer in backbone.layers if layer.__class__.__name__ == "BatchNormalization")


def test_random_weights_train_whole_in_one_phase():
    design = backbone_design()
    model = build_model(design, image_schema((32, 32, 3)))
    assert transfer.trainable_count(model) > 900_000 and fine_tune(model, design.hyperparameters) is None


def test_backbone_keys_are_checked():
    with pytest.raises(ConfigError, match=r"model.backbone.network.*'resnet9'.*mobilenet_v3_small.*models:/"):
        config("model=backbone", "model.backbone.network=resnet9")
    with pytest.raises(ConfigError, match=r"model.backbone.weights.*'cifar'.*imagenet.*\.weights\.h5"):
        config("model=backbone", "model.backbone.weights=cifar")
    with pytest.raises(DesignError, match="no weights file at /no/such.weights.h5"):
        build_model(backbone_design("model.backbone.weights=/no/such.weights.h5"), image_schema((32, 32, 3)))
    with pytest.raises(DesignError, match="no exported model at /no/model.keras"):
        build_model(backbone_design("model.backbone.network=/no/model.keras"), image_schema((32, 32, 3)))


def test_backbone_needs_pixel_images():
    schema = dataclasses.replace(image_schema((32, 32, 3)), scaling=dataclasses.replace(RESCALE_UNIT, kind="standardize"))
    design = dataclasses.replace(backbone_design(), preprocessing={"mean": [0.0] * 3, "variance": [1.0] * 3})
    with pytest.raises(DesignError, match="backbone reads images with known pixel values"):
        build_model(design, schema)


@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    """The default image design trained on five generated shape classes, exported as .keras."""
    splits = shape_splits(SOURCE_CLASSES, 200, 40, 10, seed=100)
    model, _, _ = train(config("model=cnn", "train.epochs=20"), splits, shape_schema(len(SOURCE_CLASSES)))
    path = tmp_path_factory.mktemp("source") / "source.keras"
    model.save(path)
    return path


@pytest.mark.slow  # about 2 minutes: .ci/run runs it
def test_an_exported_model_reused_as_backbone_beats_scratch_on_20_images_per_class(source_model, tmp_path):
    splits = shape_splits(TARGET_CLASSES, 20, 10, 60, seed=0)
    schema = shape_schema(len(TARGET_CLASSES))
    scratch_cfg = config("model=cnn", "train.epochs=30")
    scratch, _, _ = train(scratch_cfg, splits, schema)
    cfg = config("model=backbone", f"model.backbone.network={source_model}", "train.epochs=30")
    moved, _, fitted = train(cfg, splits, schema)
    scratch_accuracy, moved_accuracy = score(scratch, cfg.goal, splits.test), score(moved, cfg.goal, splits.test)
    assert moved_accuracy > scratch_accuracy + 0.05, (moved_accuracy, scratch_accuracy)
    assert fitted.fine_tuned.startswith("the top ") and len(fitted.phase_epochs) in (1, 2)
    # before training, the backbone holds the source's layers and weights up to its head
    source = load_model(source_model)
    reused = transfer.find_backbone(build_model(initial_design(cfg), schema))
    assert [layer.name for layer in reused.layers] == [layer.name for layer in source.layers][:len(reused.layers)]
    assert tuple(reused.output.shape) == tuple(source.get_layer("output").input.shape)
    assert all(np.array_equal(a, b) for a, b in zip(reused.get_weights(), source.get_weights()))
    # after it, the model loads in safe mode and predicts the same
    moved.save(tmp_path / "moved.keras")
    again = load_model(tmp_path / "moved.keras")
    assert np.allclose(again.predict(splits.test.x[:8], verbose=0), moved.predict(splits.test.x[:8], verbose=0),
                       atol=1e-5)
    # the refit trains both phases, as many epochs as the run kept
    design = initial_design(cfg, train_rows=len(splits.train))
    assert refit(design, schema, splits.train_and_validation(), cfg.train, (2, 1), verbose=0) is not None


def test_diagnosis_freezes_more_when_overfitting_and_unfreezes_more_when_underfitting():
    cfg = config("model=backbone", "model.backbone.weights=none")
    space = DesignSpace.from_config(cfg, "image")
    plan = RoundPlan(space, 10, 20, None)
    best = {"family": "backbone", "backbone_unfreeze_layers": 20}
    frozen, changes = adjust(plan, [Diagnosis("overfitting", "")], best)
    assert frozen.space.per_family["backbone"].unfreeze_layers.max == 10
    assert "backbone: freeze more (unfreeze_layers at most 10)" in changes
    grown, _ = adjust(plan, [Diagnosis("underfitting", "")], best)
    assert grown.space.per_family["backbone"].unfreeze_layers.max == 400


# ---- test-time augmentation and label smoothing ------------------------------------------------

def cnn_design(*overrides):
    return initial_design(config("model=cnn", *overrides))


def test_test_time_augmentation_averages_the_flipped_views_at_inference_only(tmp_path):
    schema = image_schema((8, 8, 1))
    plain = build_model(cnn_design(), schema)
    model = build_model(cnn_design("model.common.test_time_augmentation=flip"), schema)
    model.set_weights(plain.get_weights())  # the views and their mean have no weights
    x = pixels(4, (8, 8, 1))
    expected = (plain.predict(x, verbose=0) + plain.predict(x[:, :, ::-1], verbose=0)) / 2
    assert np.allclose(model.predict(x, verbose=0), expected, atol=1e-5)
    assert tuple(model(x, training=True).shape) == (4, 3)  # training sees each image once
    both = build_model(cnn_design("model.common.test_time_augmentation=flip_and_crop"), schema)
    assert both.predict(x, verbose=0).shape == (4, 3)
    both.save(tmp_path / "tta.keras")
    assert np.allclose(load_model(tmp_path / "tta.keras").predict(x, verbose=0), both.predict(x, verbose=0), atol=1e-5)


def test_label_smoothing_on_class_ids_matches_keras_on_one_hot_targets(tmp_path):
    import keras

    from pipeline.models.layers import SmoothedSparseCrossentropy
    from pipeline.training import compile_model

    y = np.array([0, 2, 1, 2])
    p = np.random.default_rng(0).dirichlet(np.ones(3), size=4).astype("float32")
    ours = float(SmoothedSparseCrossentropy(0.1)(y, p))
    keras_one_hot = float(keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(np.eye(3)[y], p))
    plain = float(keras.losses.SparseCategoricalCrossentropy()(y, p))
    assert ours == pytest.approx(keras_one_hot, rel=1e-5) and ours != pytest.approx(plain, rel=1e-3)
    design = cnn_design("train.label_smoothing=0.1")
    model = build_model(design, image_schema((8, 8, 1)))
    compile_model(model, task_named("multiclass"), design.hyperparameters, 1, 1, "accuracy")
    assert isinstance(model.loss, SmoothedSparseCrossentropy) and model.loss.label_smoothing == 0.1
    model.fit(pixels(8, (8, 8, 1)), np.arange(8) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "smoothed.keras")
    assert load_model(tmp_path / "smoothed.keras").loss.label_smoothing == 0.1


def test_smoothing_and_test_time_augmentation_are_refused_where_they_do_not_apply():
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match=r"train.label_smoothing.*0 for regression"):
        make_config("data=diabetes", "train.label_smoothing=0.1")
    with pytest.raises(ConfigError, match=r"train.label_smoothing.*\[0, 0.5\)"):
        make_config("data=digits", "train.label_smoothing=0.6")
    with pytest.raises(ConfigError, match=r"model.common.test_time_augmentation.*images"):
        make_config("data=wine", "model.common.test_time_augmentation=flip")
    assert make_config("data=digits", "train.label_smoothing.choices=[0.0,0.1]").train.label_smoothing.choices == [0.0, 0.1]


@pytest.mark.parametrize("overrides, share, searched", [
    (("data=digits",), 0.1, [0.0, 0.1]),  # multiclass, accuracy: smoothed, the search may turn it off
    (("data=digits", "goal.metric=auc"), 0.0, [0.0]),  # AUC ranks the probabilities: none
    (("data=breast_cancer",), 0.0, [0.0]),  # binary: none
    (("data=diabetes",), 0.0, [0.0]),  # regression: nothing to smooth, and no refusal
    (("data=diabetes", "train.label_smoothing=auto"), 0.0, [0.0]),
    (("data=digits", "train.label_smoothing=auto"), 0.1, [0.0, 0.1]),
    (("data=digits", "train.label_smoothing.choices=[0.0,0.2]"), 0.1, [0.0, 0.1, 0.2]),
    (("data=digits", "train.label_smoothing=0.05"), 0.05, [0.05]),  # as written
    (("data=digits", "train.label_smoothing=0"), 0.0, [0.0]),
])
def test_auto_label_smoothing_is_the_tasks_share_for_the_goal_metric(overrides, share, searched):
    from pipeline.designs import DesignSpace, initial_design
    from tests.conftest import make_config

    cfg = make_config(*overrides)
    assert initial_design(cfg, train_rows=500).hyperparameters["label_smoothing"] == share
    space = DesignSpace.from_config(cfg, train_rows=500).training.label_smoothing
    assert (space.default, space.choices) == (share, searched)
