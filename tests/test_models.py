import numpy as np
import pytest

from pipeline.data import Schema
from pipeline.models import DesignError, build_model, compile_model, layer_table
from pipeline.models.cnn import max_blocks, pooled_size
from tests.conftest import make_config
from pipeline.designs import initial_design


def image_schema(shape, task="multiclass", classes=3):
    return Schema(source="t", task=task, input_kind="image", input_shape=list(shape), features=["pixels"],
                  scaling={"kind": "rescale", "scale": 1 / 255}, output_kind="classes",
                  classes=[str(i) for i in range(classes)])


def tabular_schema(n, task):
    return Schema(source="t", task=task, input_kind="tabular", input_shape=[n], features=[f"f{i}" for i in range(n)],
                  scaling={"kind": "standardize"}, output_kind="value" if task == "regression" else "classes",
                  classes=[] if task == "regression" else ["a", "b"])


def test_pooling_size_formula():
    assert pooled_size(8) == 4 and pooled_size(7) == 3 and pooled_size(2) == 1
    assert max_blocks([8, 8]) == 3 and max_blocks([28, 28]) == 4 and max_blocks([32, 16]) == 4


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3), (12, 20, 3)])
@pytest.mark.parametrize("family", ["cnn", "mlp"])
def test_image_designs_build_and_predict(shape, family):
    cfg = make_config(f"model={family}")
    design = initial_design(cfg)
    model = build_model(design, image_schema(shape), {})
    out = model.predict(np.random.rand(2, *shape).astype("float32") * 255, verbose=0)
    assert out.shape == (2, 3) and np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_cnn_refuses_a_design_that_collapses_the_input():
    cfg = make_config("model=cnn", "model.cnn.filters=[8,8,8,8]")
    with pytest.raises(DesignError, match=r"4 pooling blocks collapse a \[8, 8\] input; at most 3 fit"):
        build_model(initial_design(cfg), image_schema((8, 8, 1)), {})


def test_regression_head_outputs_target_units():
    cfg = make_config("data=diabetes")
    stats = {"mean": [0.0] * 4, "variance": [1.0] * 4, "target_mean": 150.0, "target_std": 70.0}
    model = build_model(initial_design(cfg), tabular_schema(4, "regression"), stats)
    assert model.get_layer("value").scale == 70.0 and model.get_layer("value").offset == 150.0
    out = model.predict(np.zeros((3, 4), "float32"), verbose=0)
    assert out.shape == (3, 1) and abs(out.mean() - 150) < 150


def test_binary_head_and_normalization_from_train_stats():
    cfg = make_config("data=breast_cancer")
    stats = {"mean": [10.0, 20.0], "variance": [4.0, 9.0]}
    model = build_model(initial_design(cfg), tabular_schema(2, "binary"), stats)
    normalized = model.get_layer("standardize")(np.array([[12.0, 26.0]], "float32"))
    assert np.allclose(np.asarray(normalized), [[1.0, 2.0]], atol=1e-5)
    compile_model(model, "binary", {"optimizer": "sgd", "learning_rate": 0.01, "lr_schedule": "cosine"}, 10, 2)
    assert model.output_shape == (None, 1)


def test_layer_table_lists_shapes_and_params():
    cfg = make_config()
    model = build_model(initial_design(cfg), image_schema((8, 8, 1), classes=10), {})
    rows = layer_table(model)
    assert rows[0]["layer"] == "features" and rows[-1]["output_shape"] == "(batch, 10)"
    assert sum(r["params"] for r in rows) == model.count_params()
