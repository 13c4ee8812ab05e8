"""Builders: every family on image, tabular and sequence inputs of several shapes; collapse
excluded; preprocessing and heads; augmentation only in training; save/load in safe mode."""

import dataclasses

import numpy as np
import pytest

from pipeline.config import defaults
from pipeline.designs import initial_design
from pipeline.errors import DesignError
from pipeline.models import registry
from pipeline.models.blocks import halvings, output_size
from pipeline.models.builder import build_model, fit_to_input, layer_table, max_depth
from pipeline.schema import RESCALE_UNIT, STANDARDIZE, Schema
from pipeline.tasks import task_named
from pipeline.training import compile_model
from tests.conftest import make_config


def image_schema(shape, task="multiclass", classes=3):
    return Schema(source="t", task=task_named(task), input_kind="image", input_shape=list(shape), features=["pixels"],
                  scaling=RESCALE_UNIT, classes=[str(i) for i in range(classes)])


def tabular_schema(n, task):
    return Schema(source="t", task=task_named(task), input_kind="tabular", input_shape=[n],
                  features=[f"f{i}" for i in range(n)], scaling=STANDARDIZE,
                  classes=[] if task == "regression" else ["a", "b"])


def sequence_schema(steps, features):
    return Schema(source="t", task=task_named("multiclass"), input_kind="sequence", input_shape=[steps, features],
                  features=["x"], scaling=STANDARDIZE, classes=["a", "b", "c"])


def standard_stats(schema):
    from pipeline.designs import quantile_edges

    stats = {"mean": [0.0] * schema.input_shape[-1], "variance": [1.0] * schema.input_shape[-1]}
    if schema.input_kind == "tabular":
        stats["bins"] = quantile_edges(np.random.default_rng(0).normal(size=(100, schema.input_shape[-1])))
    return stats


def design_for(family, *overrides, stats=None):
    offline = ["model.backbone.weights=none"] if family == "backbone" else []  # tests do not download
    data = [] if "image" in registry.family(family).reads else ["data=breast_cancer"]  # the default data are images
    design = initial_design(make_config(*data, f"model={family}", *offline, *overrides))
    return dataclasses.replace(design, preprocessing=stats or {})


def test_output_size_formula():
    assert output_size(8, 2, 2) == 4 and output_size(7, 2, 2) == 3 and output_size(2, 2, 2) == 1
    assert output_size(8, 3, 2, padding=1) == 4 and output_size(28, 5, 1) == 24
    assert halvings(8) == 3 and halvings(28) == 4 and halvings(1) == 0


CASES = [(image_schema(s), fam) for s in [(8, 8, 1), (28, 28, 1), (32, 32, 3), (12, 20, 3)]
         for fam in registry.reading("image")]
CASES += [(tabular_schema(13, "multiclass"), fam) for fam in registry.reading("tabular")]
CASES += [(sequence_schema(*s), fam) for s in [(20, 3), (5, 1)] for fam in registry.reading("sequence")]


@pytest.mark.parametrize("schema, family", CASES, ids=lambda v: getattr(v, "input_kind", v) and str(
    getattr(v, "input_shape", v)))
def test_every_family_builds_and_predicts_on_every_input_it_reads(schema, family):
    design = fit_to_input(design_for(family, stats=standard_stats(schema)), schema)
    model = build_model(design, schema)
    x = np.random.rand(2, *schema.input_shape).astype("float32")
    out = model.predict(x, verbose=0)
    classes = schema.n_outputs
    assert out.shape == (2, classes) and np.all(np.isfinite(out))


@pytest.mark.parametrize("family, depth, limit", [("cnn", "blocks", 3), ("resnet", "stages", 4), ("inception", "blocks", 4)])
def test_depth_that_collapses_an_8x8_image_is_refused_and_capped(family, depth, limit):
    schema = image_schema((8, 8, 1))
    assert max_depth(family, [8, 8, 1]) == limit
    design = design_for(family, f"model.{family}.{depth}={limit + 1}")
    with pytest.raises(DesignError, match=rf"{limit + 1} .* collapse a \[8, 8\] input; at most {limit} fit"):
        build_model(design, schema)
    fitted = fit_to_input(design, schema)
    assert fitted.hyperparameters[depth] == limit and "would collapse" in fitted.note
    build_model(fitted, schema)


def test_image_only_families_refuse_other_inputs():
    with pytest.raises(DesignError, match="cnn needs image input"):
        build_model(design_for("cnn", stats=standard_stats(sequence_schema(10, 2))), sequence_schema(10, 2))


def test_per_layer_choices_reach_the_layers():
    design = design_for("cnn", "model.cnn.kernel_size=5", "model.cnn.pooling=avg", "model.common.activation=gelu",
                        "model.common.l1=0.001", "model.common.initializer=he_uniform")
    model = build_model(design, image_schema((8, 8, 1)))
    conv = model.get_layer("block0_conv0")
    assert conv.kernel_size == (5, 5) and type(model.get_layer("block0_pool")).__name__ == "AveragePooling2D"
    assert conv.kernel_regularizer.l1 == pytest.approx(0.001) and type(conv.kernel_initializer).__name__ == "HeUniform"
    assert model.get_layer("block0_conv0_act").activation.__name__ == "gelu"


def test_rnn_cell_and_bidirectional_choices():
    design = design_for("rnn", "model.rnn.cell=gru", "model.rnn.bidirectional=true", "model.rnn.layers=2",
                        stats=standard_stats(sequence_schema(12, 2)))
    model = build_model(design, sequence_schema(12, 2))
    names = [layer.name for layer in model.layers]
    assert "bi_gru_0" in names and "bi_gru_1" in names


def test_augmentation_is_inside_the_model_and_only_active_in_training():
    design = design_for("cnn", "augment.enabled=true", "augment.rotation=0.2")
    model = build_model(design, image_schema((8, 8, 1)))
    assert {"augment_rotation", "augment_translation", "augment_zoom"} <= {layer.name for layer in model.layers}
    x = np.random.rand(4, 8, 8, 1).astype("float32") * 255
    assert np.allclose(model(x, training=False), model(x, training=False))
    rescaled = model.get_layer("rescale")(x)
    augmented = model.get_layer("augment_rotation")(rescaled, training=True)
    assert not np.allclose(np.asarray(augmented), np.asarray(rescaled))


def test_regression_head_outputs_target_units():
    cfg = make_config("data=diabetes")
    stats = {**standard_stats(tabular_schema(4, "regression")), "target_mean": 150.0, "target_std": 70.0}
    model = build_model(dataclasses.replace(initial_design(cfg), preprocessing=stats), tabular_schema(4, "regression"))
    assert model.get_layer("value").scale == 70.0 and model.get_layer("value").offset == 150.0
    out = model.predict(np.zeros((3, 4), "float32"), verbose=0)
    assert out.shape == (3, 1) and abs(out.mean() - 150) < 150


def test_binary_head_and_normalization_from_train_stats():
    cfg = make_config("data=breast_cancer")
    stats = {**standard_stats(tabular_schema(2, "binary")), "mean": [10.0, 20.0], "variance": [4.0, 9.0]}
    model = build_model(dataclasses.replace(initial_design(cfg), preprocessing=stats), tabular_schema(2, "binary"))
    normalized = model.get_layer("standardize")(np.array([[12.0, 26.0]], "float32"))
    assert np.allclose(np.asarray(normalized), [[1.0, 2.0]], atol=1e-5)
    compile_model(model, task_named("binary"), {"optimizer": "sgd", "learning_rate": 0.01, "lr_schedule": "cosine"},
                  10, 2)
    assert model.output_shape == (None, 1)


def test_sequence_normalization_is_per_feature():
    schema = sequence_schema(4, 2)
    model = build_model(design_for("rnn", stats={"mean": [1.0, 10.0], "variance": [1.0, 4.0]}), schema)
    x = np.tile(np.array([2.0, 14.0], "float32"), (1, 4, 1))
    assert np.allclose(np.asarray(model.get_layer("standardize")(x)), np.tile([1.0, 2.0], (1, 4, 1)), atol=1e-5)


@pytest.mark.parametrize("family, schema", [("transformer", sequence_schema(6, 2)), ("resnet", image_schema((8, 8, 1))),
                                            ("tcn", sequence_schema(16, 2)), ("tcn", image_schema((8, 8, 1)))])
def test_saved_models_load_in_safe_mode(family, schema, tmp_path):
    import keras

    model = build_model(design_for(family, stats=standard_stats(schema)), schema)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.random.rand(3, *schema.input_shape).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-6)


def test_layer_table_lists_shapes_and_params():
    cfg = make_config()
    model = build_model(initial_design(cfg), image_schema((8, 8, 1), classes=10))
    rows = layer_table(model)
    assert rows[0]["layer"] == "features" and rows[-1]["output_shape"] == "(batch, 10)"
    assert sum(r["params"] for r in rows) == model.count_params()


def test_defaults_are_the_initial_design():
    cfg = make_config("model=resnet")
    assert defaults(cfg.model.resnet) == {k: v for k, v in initial_design(cfg).hyperparameters.items()
                                          if k in type(cfg.model.resnet).model_fields}


def text_schema(length=12, words=30):
    from pipeline.schema import NO_SCALING, ColumnSpec

    column = ColumnSpec("review", "text", "empty", "text_review", sequence_length=length, vocabulary_size=words + 2,
                        vocabulary=[f"w{i}" for i in range(words)])
    return Schema(source="t", task=task_named("binary"), input_kind="text", input_shape=[length],
                  features=["review"], scaling=NO_SCALING, classes=["neg", "pos"], columns=[column])


def test_tcn_reads_sequences_image_rows_and_word_embeddings():
    for schema in (sequence_schema(30, 2), image_schema((8, 8, 1)), text_schema()):
        design = design_for("tcn", "model.tcn.dilation_base=2", "model.tcn.blocks=3", stats=standard_stats(schema))
        model = build_model(design, schema)
        dilations = [model.get_layer(f"tcn{b}").dilation_rate for b in range(3)]
        assert dilations == [(1,), (2,), (4,)]
        dtype = "int32" if schema.input_kind == "text" else "float32"
        x = np.random.randint(0, 20, (2, *schema.input_shape)).astype(dtype)
        assert np.all(np.isfinite(model.predict(x, verbose=0)))
    assert "tcn" in registry.reading("text") and "tcn" in registry.searched_for("sequence")
    assert "tcn" in make_config("data=npz", "data.path=x.npz", "data.input=sequence").search_families


def test_every_family_file_registers_its_space_and_builder():
    import importlib
    import pkgutil

    import pipeline.models.families as package

    modules = sorted(i.name for i in pkgutil.iter_modules(package.__path__))
    assert modules == sorted(registry.FAMILIES)
    for name in modules:
        family = importlib.import_module(f"pipeline.models.families.{name}").FAMILY
        assert registry.family(name) is family
        assert family.depth in family.space.model_fields and set(family.widths) <= set(family.space.model_fields)
    # the config has a section per family, and conf/ declares each family's ranges
    import yaml

    from pipeline.config import ModelConfig
    from tests.conftest import REPO

    conf = yaml.safe_load((REPO / "conf" / "model" / "auto.yaml").read_text())
    assert set(registry.FAMILIES) <= set(ModelConfig.model_fields) and set(registry.FAMILIES) <= set(conf)
    for kind in registry.INPUT_KINDS:
        assert registry.initial_for(kind) in registry.reading(kind)



def test_piecewise_linear_encoding_places_numbers_in_training_quantile_bins(tmp_path):
    import keras

    from pipeline.designs import quantile_edges
    from pipeline.models.layers import PiecewiseLinearEncoding

    edges = quantile_edges(np.arange(101, dtype="float64")[:, None], bins=4)  # quartiles 0, 25, 50, 75, 100
    assert np.allclose(edges, [[0, 25, 50, 75, 100]])
    layer = PiecewiseLinearEncoding(edges)
    encoded = np.asarray(layer(np.array([[-25.0], [30.0], [100.0], [150.0]], "float32")))
    assert np.allclose(encoded, [[-1, 0, 0, 0], [1, 0.2, 0, 0], [1, 1, 1, 1], [1, 1, 1, 3]])  # open at both ends
    few = quantile_edges(np.array([[0.0], [1.0]] * 20), bins=4)  # a 0/1 column: evenly spaced edges
    assert np.allclose(few, [[0, 0.25, 0.5, 0.75, 1]])
    schema = tabular_schema(3, "binary")
    model = build_model(design_for("mlp", "model.common.numeric_encoding=piecewise", stats=standard_stats(schema)),
                        schema)
    assert model.get_layer("numeric_bins").output.shape == (None, 3 * 16)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = np.random.rand(4, 3).astype("float32")
    assert np.allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-6)


def test_ngram_bag_is_a_dense_layer_on_the_tfidf_vector(tmp_path):
    import keras

    from pipeline.schema import NO_SCALING, ColumnSpec

    spec = ColumnSpec("review", "text", "empty", "text_review", sequence_length=6, representation="ngrams", ngrams=2,
                      vocabulary=[f"g{i}" for i in range(9)], idf=[1.0] * 9)
    schema = Schema(source="t", task=task_named("binary"), input_kind="text", input_shape=[6], features=["review"],
                    scaling=NO_SCALING, classes=["a", "b"], columns=[spec], text_embed_dim=4)
    assert schema.body_kind == "ngrams" and registry.initial_for("ngrams") == "mlp"
    model = build_model(design_for("mlp", stats={}), schema)
    ids = np.array([[3, 1, 0, 0, 0, 0], [9, 2, 5, 0, 0, 0]], "int32")
    weights = np.array([[0.6, 0.8, 0, 0, 0, 0], [0.5, 0.5, 0.7071, 0, 0, 0]], "float32")
    bag = keras.Model(model.inputs, model.get_layer("text_review_bag").output)
    vectors = model.get_layer("text_review_ngrams").get_weights()[0]
    dense = np.zeros((2, 10), "float32")  # the TF-IDF vectors (column 0: padding)
    np.put_along_axis(dense, ids, weights, axis=1)
    dense[:, 0] = 0
    inputs = {"text_review_ids": ids, "text_review_weights": weights}
    assert np.allclose(bag.predict(inputs, verbose=0), dense @ vectors, atol=1e-5)
    model.save(tmp_path / "m.keras")
    assert np.allclose(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True).predict(inputs, verbose=0),
                       model.predict(inputs, verbose=0), atol=1e-6)


def test_regression_trains_on_standardised_log_targets_and_answers_in_target_units():
    task = task_named("regression")
    skewed = np.random.default_rng(0).lognormal(8, 1, 500)  # prices: positive, long right tail
    stats = task.target_statistics(skewed)
    assert stats["target_transform"] == "log" and abs(stats["target_mean"] - np.log(skewed).mean()) < 1e-9
    assert task.target_statistics(np.random.default_rng(0).normal(0, 1, 500))["target_transform"] == "none"
    targets = task.training_targets(skewed, stats)
    assert abs(targets.mean()) < 1e-6 and abs(targets.std() - 1) < 1e-4
    assert np.allclose(task.outputs(targets, stats), skewed, rtol=1e-4)
    schema = tabular_schema(4, "regression")
    model = build_model(design_for("mlp", stats={**standard_stats(schema), **stats}), schema)
    view = task.training_view(model)
    x = np.random.rand(5, 4).astype("float32")
    assert np.allclose(model.predict(x, verbose=0).ravel(), task.outputs(view.predict(x, verbose=0), stats).ravel(),
                       rtol=1e-4)
    with pytest.raises(DesignError, match="target_transform is log, but some training targets are 0 or negative"):
        task.target_statistics(np.array([1.0, 0.0, 5.0]), "log")


def test_auto_batch_size_gives_about_150_steps_an_epoch():
    cfg = make_config("data=wine")
    sizes = cfg.train.batch_size
    assert sizes.default == "auto" and sizes.for_rows(1000) == 32 and sizes.for_rows(35000) == 256
    assert sizes.for_rows(15000) == 128 and make_config("train.batch_size=64").train.batch_size.for_rows(35000) == 64
    from pipeline.designs import DesignSpace

    searched = DesignSpace.from_config(cfg, "tabular", train_rows=35000).training.batch_size
    assert searched.choices == [128, 256] and searched.default == 256


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_tabm_members_train_on_their_own_loss_and_the_model_averages_them(task, tmp_path):
    import keras

    from pipeline.models.layers import MemberLoss, member_outputs

    schema = tabular_schema(5, task)
    target_stats = {"target_mean": 0.0, "target_std": 1.0} if task == "regression" else {}
    design = design_for("tabm", "model.tabm.members=4", stats={**standard_stats(schema), **target_stats})
    model = build_model(design, schema)
    view = schema.task.training_view(model)
    assert member_outputs(model) == 0 and member_outputs(view) == 4
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    members = view.predict(x, verbose=0)
    assert members.shape == (6, 4, schema.n_outputs)
    assert np.allclose(members.mean(axis=1), model.predict(x, verbose=0), atol=1e-5)
    # the ensemble's loss is the mean of each member's loss on the same targets
    y = np.array([0, 1, 1, 0, 1, 0]).astype("float32" if task != "multiclass" else "int64")
    loss = keras.losses.get(schema.task.loss)
    by_member = [np.mean(loss(y if task == "multiclass" else y[:, None], members[:, m])) for m in range(4)]
    ensemble = float(MemberLoss(schema.task.loss)(y, members))
    assert ensemble == pytest.approx(np.mean(by_member), rel=1e-4)
    # members differ (own scalings) though they share the Dense layers; the whole saves and loads safely
    assert not np.allclose(members[:, 0], members[:, 1])
    compile_model(view, schema.task, design.hyperparameters, steps_per_epoch=1, epochs=1)
    view.fit(x, schema.task.training_targets(y, target_stats) if task == "regression" else y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_label_smoothed_member_loss_is_the_mean_of_each_members_smoothed_loss():
    from pipeline.models.layers import MemberLoss, SmoothedSparseCrossentropy

    members = np.random.default_rng(0).dirichlet(np.ones(3), size=(5, 4)).astype("float32")  # (rows, members, classes)
    y = np.array([0, 2, 1, 1, 0])
    smoothed = SmoothedSparseCrossentropy(0.1)
    by_member = [float(smoothed(y, members[:, m])) for m in range(4)]
    assert float(MemberLoss(smoothed)(y, members)) == pytest.approx(np.mean(by_member), rel=1e-5)
