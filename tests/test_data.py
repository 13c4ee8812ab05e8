import numpy as np
import pandas as pd
import pytest

from pipeline.config import DataConfig
from pipeline.data import DataError, load_dataset
from pipeline.schema import RESCALE_UNIT, Scaling, Schema


def test_digits_are_8x8x1_images_with_raw_values():
    ds = load_dataset(DataConfig(source="digits"), "multiclass")
    assert ds.x.shape == (1797, 8, 8, 1) and ds.x.dtype == np.float32
    assert ds.x.max() == 16.0 and ds.schema.scaling == Scaling("rescale", 1 / 16)
    assert ds.schema.classes == [str(i) for i in range(10)] and ds.schema.input_kind == "image"


@pytest.mark.parametrize("source, task, n_features, n_classes", [
    ("breast_cancer", "binary", 30, 2), ("wine", "multiclass", 13, 3), ("diabetes", "regression", 10, 0),
])
def test_sklearn_tables(source, task, n_features, n_classes):
    ds = load_dataset(DataConfig(source=source), task)
    assert ds.x.shape[1] == n_features and len(ds.schema.classes) == n_classes
    assert ds.schema.features and len(ds.schema.features) == n_features
    assert ds.y.dtype == (np.float32 if task == "regression" else np.int64)


def test_schema_round_trips_through_json(tmp_path):
    schema = load_dataset(DataConfig(source="wine"), "multiclass").schema
    schema.to_json(tmp_path / "schema.json")
    assert Schema.from_json(tmp_path / "schema.json") == schema


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.integers(0, 5, 40), "label": ["yes", "no"] * 20})
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return frame, path


def test_csv_with_string_classes(table):
    frame, path = table
    ds = load_dataset(DataConfig(source="csv", path=str(path), target="label"), "binary")
    assert ds.schema.classes == ["no", "yes"] and ds.schema.features == ["a", "b"]
    assert (ds.y == (frame["label"] == "yes").astype(int).to_numpy()).all()


def test_csv_multilabel(tmp_path):
    frame = pd.DataFrame({"x": range(10), "cat": [0, 1] * 5, "dog": [1, 1, 0, 0, 1] * 2})
    frame.to_csv(tmp_path / "m.csv", index=False)
    ds = load_dataset(DataConfig(source="csv", path=str(tmp_path / "m.csv"), target=["cat", "dog"]), "multilabel")
    assert ds.y.shape == (10, 2) and ds.schema.classes == ["cat", "dog"]


def test_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="data.path: file not found: .*nope.csv"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "nope.csv"), target="y"), "binary")


def test_csv_unknown_column(table):
    _, path = table
    with pytest.raises(DataError, match=r"column\(s\) \['target'\] not found; columns are \['a', 'b', 'label'\]"):
        load_dataset(DataConfig(source="csv", path=str(path), target="target"), "binary")


def test_csv_non_numeric_feature_names_column_and_row(table, tmp_path):
    frame, _ = table
    frame = frame.astype({"a": object})
    frame.loc[7, "a"] = "seven"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="column 'a' must be numeric; row 7 holds 'seven'"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "bad.csv"), target="label"), "binary")


def test_csv_missing_target_value(table, tmp_path):
    frame, _ = table
    frame.loc[3, "label"] = None
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="target column 'label' has a missing value at row 3"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "bad.csv"), target="label"), "binary")


def test_csv_binary_task_with_three_classes(tmp_path):
    pd.DataFrame({"a": range(9), "label": ["x", "y", "z"] * 3}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="goal.task is binary but target 'label' has 3 classes"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "t.csv"), target="label"), "binary")


def test_csv_empty(tmp_path):
    (tmp_path / "e.csv").write_text("a,label\n")
    with pytest.raises(DataError, match="has no rows"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "e.csv"), target="label"), "binary")


def test_npz_images_sequences_and_tables(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.integers(0, 255, (20, 6, 5, 3)).astype("uint8"), y=np.arange(20) % 2)
    ds = load_dataset(DataConfig(source="npz", path=str(tmp_path / "img.npz"), input="image"), "binary")
    assert ds.schema.input_shape == [6, 5, 3] and ds.schema.scaling == RESCALE_UNIT
    np.savez(tmp_path / "seq.npz", x=rng.normal(size=(20, 7, 2)), y=rng.normal(size=20))
    ds = load_dataset(DataConfig(source="npz", path=str(tmp_path / "seq.npz"), input="sequence"), "regression")
    assert ds.schema.input_kind == "sequence" and ds.schema.input_shape == [7, 2] and ds.y.dtype == np.float32


@pytest.mark.parametrize("arrays, layout, message", [
    ({"x": np.zeros((4, 3))}, "tabular", r"array\(s\) \['y'\] not found; it holds \['x'\]"),
    ({"x": np.zeros((4, 3)), "y": np.zeros(4)}, "sequence",
     r"data.input is sequence, so x must be \(n, steps, features\); got shape \(4, 3\)"),
    ({"x": np.zeros((4, 3)), "y": np.zeros(5)}, "tabular", "x has 4 rows but y has 5"),
    ({"x": np.array([[1.0], [np.nan]]), "y": np.array([0, 1])}, "tabular", "missing or infinite value in row 1"),
])
def test_npz_errors_name_the_problem(tmp_path, arrays, layout, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(source="npz", path=str(tmp_path / "bad.npz"), input=layout), "multiclass")
