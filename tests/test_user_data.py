"""Users' own data: typed tables (CSV, Parquet), image folders, text, sequences and windows,
each through the whole pipeline on a tiny budget; the split kinds; predict on raw inputs."""

import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import inputs
from pipeline.config import compose_params
from pipeline.data import load_dataset
from pipeline.files import read_json
from pipeline.image_batches import ImageBatches
from pipeline.images import ImageFiles
from pipeline.paths import Paths
from pipeline.predict import predict_file
from pipeline.prepared import load_prepared, load_splits
from pipeline.schema import RESCALE_SYMMETRIC
from tests.conftest import ALL_STAGES, REPO, TINY, make_config, run_stages
from tests.datagen import image_folder, mixed_table, sequence_table, text_table, time_series


def _run(tmp_path, *overrides):
    cfg = make_config(*TINY, *overrides)
    paths = Paths(tmp_path / "run")
    return cfg, paths, run_stages(cfg, paths, ALL_STAGES)


def test_mixed_parquet_table_runs_end_to_end_with_typed_columns(mixed_run):
    cfg, paths, results = mixed_run
    kinds = {c.name: c.kind for c in results["prepare"].columns}
    assert kinds == {"age": "numeric", "income": "numeric", "city": "categorical", "plan": "categorical",
                     "note": "text"}
    splits, schema = load_splits(paths)
    x_train = splits.train.x
    # short notes: a TF-IDF bag of n-grams (ids and weights)
    assert set(x_train) == {"numeric", "categorical_city", "categorical_plan", "text_note_ids", "text_note_weights"}
    assert not np.isnan(x_train["numeric"]).any()  # missing ages filled
    assert results["validate"]["value"] > 0.7
    slices = pd.read_csv(paths.validate / "slices.csv")
    assert {"city", "plan", "age"} <= set(slices["column"])  # categories and numeric bins of the raw columns
    layers = (paths.design / "layers.md").read_text()
    assert "CategoryEncoding" in layers and "text_note_bag | Dot" in layers and "Normalization" in layers


def test_vocabularies_and_fills_come_from_the_training_rows_only(mixed_run):
    _, paths, _ = mixed_run
    raw = load_prepared(paths).x
    train = raw.iloc[np.load(paths.split / "indices.npz")["train"]]
    schema = read_json(paths.split / "schema.json")
    city = next(c for c in schema["columns"] if c["name"] == "city")
    age = next(c for c in schema["columns"] if c["name"] == "age")
    assert set(city["vocabulary"]) == set(train["city"].dropna())
    assert age["fill"] == pytest.approx(train["age"].mean())
    assert read_json(paths.prepared / "schema.json")["columns"][0].get("fill") is None  # prepare fits nothing
    # the numeric columns' quantile bins (piecewise-linear encoding) come from the training rows too
    from pipeline.designs import quantile_edges

    splits, _ = load_splits(paths)
    design = read_json(paths.design / "design.json")
    assert design["hyperparameters"]["numeric_encoding"] == "piecewise"
    assert np.allclose(design["preprocessing"]["bins"], quantile_edges(splits.train.x["numeric"]))


def test_predict_takes_raw_rows_with_gaps_and_unseen_categories(mixed_run, tmp_path):
    _, paths, _ = mixed_run
    rows = mixed_table(rows=6, seed=3).drop(columns="label")
    rows.loc[0, "city"] = "marseille"  # never seen in training: the unknown id
    rows.loc[1, "age"] = np.nan
    rows.loc[2, "note"] = None  # no words at all: still a finite prediction
    rows.to_csv(tmp_path / "rows.csv", index=False)
    predicted = predict_file(paths.export / "model.keras", tmp_path / "rows.csv")
    assert len(predicted) == 6 and set(predicted["prediction"]) <= {"basic", "plus", "pro"}
    assert np.allclose(predicted[["prob_basic", "prob_plus", "prob_pro"]].sum(axis=1), 1.0, atol=1e-5)


def test_csv_source_reads_the_same_table(tmp_path):
    mixed_table().to_csv(tmp_path / "table.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 'table.csv'}", "data.target=label",
                      "data.missing={age: median}")
    ds = load_dataset(cfg.data, "multiclass")
    assert isinstance(ds.x, pd.DataFrame) and ds.schema.classes == ["basic", "plus", "pro"]
    assert {c.name: c.missing for c in ds.schema.columns}["age"] == "median"


def test_image_folder_trains_from_files_read_in_batches(image_run):
    cfg, paths, results, _ = image_run
    schema = results["prepare"]
    assert schema.input_kind == "image" and schema.input_shape == [12, 12, 3] and schema.classes == ["hbar", "square", "vbar"]
    assert (paths.prepared / "images.csv").is_file() and "x" not in np.load(paths.prepared / "data.npz").files
    splits, _ = load_splits(paths)
    assert isinstance(splits.train.x, ImageFiles)
    assert 0.0 <= results["validate"]["value"] <= 1.0
    assert (paths.design / "augmentation_samples.png").stat().st_size > 1000
    assert schema.scaling == RESCALE_SYMMETRIC
    assert (paths.validate / "worst_examples.png").stat().st_size > 1000
    assert pd.read_csv(paths.validate / "worst_examples.csv")["file"].str.endswith(".png").all()


def test_image_batches_decode_only_one_batch(image_run):
    _, paths, _, _ = image_run
    splits, _ = load_splits(paths)
    batches = ImageBatches(splits.train.x, splits.train.y, batch_size=4, shuffle=True, seed=0)
    x, y = batches[0]
    assert x.shape == (4, 12, 12, 3) and x.max() <= 255 and len(batches) == -(-len(splits.train) // 4)


def test_predict_on_an_image_folder_and_a_single_file(image_run):
    _, paths, _, root = image_run
    folder = paths.export / "sample_images"
    predicted = predict_file(paths.export / "model.keras", folder)
    assert len(predicted) == len(list(folder.iterdir())) and "file" in predicted
    one = predict_file(paths.export / "model.keras", root / "photos" / "vbar" / "vbar_000.png")
    assert len(one) == 1 and one["prediction"][0] in ("hbar", "square", "vbar")


def test_flat_image_folder_with_labels_csv_and_grayscale(tmp_path):
    image_folder(tmp_path / "nested", per_class=3)
    flat = tmp_path / "flat"
    flat.mkdir()
    rows = []
    for file in sorted((tmp_path / "nested").rglob("*.png")):
        (flat / file.name).write_bytes(file.read_bytes())
        rows.append({"file": file.name, "label": file.parent.name})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    cfg = make_config("data=images", f"data.path={flat}", f"data.labels={tmp_path / 'labels.csv'}",
                      "data.image.color=grayscale")
    ds = load_dataset(cfg.data, "multiclass")
    assert ds.schema.input_shape == [16, 16, 1] and len(ds.y) == 9
    assert ds.x.read([0]).shape == (1, 16, 16, 1)


def test_image_path_column_in_a_table(tmp_path):
    image_folder(tmp_path / "img", per_class=3)
    files = sorted((tmp_path / "img").rglob("*.png"))
    pd.DataFrame({"picture": [str(f.relative_to(tmp_path)) for f in files],
                  "kind": [f.parent.name for f in files]}).to_csv(tmp_path / "t.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=kind")
    ds = load_dataset(cfg.data, "multiclass")
    assert isinstance(ds.x, ImageFiles) and ds.schema.input_kind == "image" and ds.x.read([0]).shape == (1, 16, 16, 3)


def test_text_classification_end_to_end(tmp_path):
    text_table(rows=400).to_csv(tmp_path / "reviews.csv", index=False)
    cfg, paths, results = _run(tmp_path, "data=csv", f"data.path={tmp_path / 'reviews.csv'}", "data.target=sentiment",
                               "data.input=text", "goal.task=binary", "data.text.sequence_length=12", "train.epochs=10",
                               "data.text.representation=sequence", "augment.word_dropout=0.1", "augment.enabled=true")
    schema = read_json(paths.split / "schema.json")
    column = schema["columns"][0]
    assert schema["input_kind"] == "text" and column["kind"] == "text" and "great" in column["vocabulary"]
    assert column["representation"] == "sequence" and results["design"].family == "tcn"
    assert "augment_word_dropout" in (paths.design / "layers.md").read_text()
    rows = pd.DataFrame({"review": ["Superb, lovely and great!", "Awful. Dull, dreadful plot."]})
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert len(predict_file(paths.export / "model.keras", tmp_path / "new.csv")) == 2


def test_wide_sequence_table_end_to_end(tmp_path):
    sequence_table().to_csv(tmp_path / "series.csv", index=False)
    cfg, paths, results = _run(tmp_path, "data=csv", f"data.path={tmp_path / 'series.csv'}", "data.target=trend",
                               "data.steps=10", "goal.task=binary", "augment.noise=0.1", "augment.enabled=true")
    assert results["prepare"].input_shape == [10, 1] and results["design"].family == "tcn"
    assert results["validate"]["value"] > 0.8
    assert "augment_noise" in (paths.design / "layers.md").read_text()


def test_forecasting_windows_are_split_in_time_order(tmp_path):
    time_series().to_csv(tmp_path / "demand.csv", index=False)
    cfg, paths, results = _run(tmp_path, "data=csv", f"data.path={tmp_path / 'demand.csv'}", "data.target=demand",
                               "data.time_column=date", "data.window={length: 14, horizon: 2}", "goal.task=regression",
                               "goal.metric=rmse", "goal.threshold=30")
    assert results["prepare"].input_shape == [14, 2] and results["split"]["method"] == "time"
    dataset = load_prepared(paths)
    idx = np.load(paths.split / "indices.npz")
    assert dataset.key[idx["train"]].max() < dataset.key[idx["validation"]].min()
    assert dataset.key[idx["validation"]].max() < dataset.key[idx["test"]].min()
    # the target is the demand 2 rows after each window's last row
    frame = time_series()
    assert dataset.y[0] == pytest.approx(frame["demand"][14 + 2 - 1], rel=1e-5)


def test_group_split_keeps_each_group_in_one_split(tmp_path):
    frame = mixed_table()
    frame["customer"] = np.arange(len(frame)) // 4
    frame.to_csv(tmp_path / "t.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=label",
                      "split=group", "split.column=customer", *TINY)
    paths = Paths(tmp_path / "run")
    summary = run_stages(cfg, paths, ("goal", "prepare", "split"))["split"]
    groups = load_prepared(paths).key
    idx = np.load(paths.split / "indices.npz")
    sets = [set(groups[idx[n]]) for n in ("train", "validation", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert summary["method"] == "group" and "customer" not in load_prepared(paths).x.columns


def test_separate_validation_source_and_duplicate_warning(tmp_path, capsys):
    frame = mixed_table(rows=200)
    frame.iloc[:150].to_csv(tmp_path / "train.csv", index=False)
    # the validation file repeats 5 training rows exactly: leakage the split reports
    pd.concat([frame.iloc[150:], frame.iloc[:5]]).to_csv(tmp_path / "val.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 'train.csv'}", "data.target=label",
                      f"data.validation_path={tmp_path / 'val.csv'}", *TINY)
    paths = Paths(tmp_path / "run")
    summary = run_stages(cfg, paths, ("goal", "prepare", "split"))["split"]
    assert summary["rows"]["validation"] == 55 and summary["separate_sources"] == ["validation"]
    assert summary["rows"]["train"] + summary["rows"]["test"] == 150
    copied_from_train = len(set(range(5)) & set(np.load(paths.split / "indices.npz")["train"].tolist()))
    assert copied_from_train >= 3 and summary["duplicates_of_train_rows"]["validation"] == copied_from_train
    assert f"WARNING {copied_from_train} validation row(s) exactly duplicate a training row" in capsys.readouterr().out
    assert set(summary["class_counts"]["validation"]) == {"basic", "plus", "pro"}


@pytest.mark.slow  # about 30 s: .ci/run runs it
def test_mixed_table_trains_on_jax(tmp_path):
    pytest.importorskip("jax")
    mixed_table(rows=120).to_csv(tmp_path / "t.csv", index=False)
    params = compose_params(["data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=label", *TINY], REPO / "conf")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    for stage in ("goal", "prepare", "split", "design", "train"):
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    assert read_json(tmp_path / "metrics" / "train.json")["backend"] == "jax"


def test_inputs_helpers_cover_every_kind():
    table = {"numeric": np.arange(6.0).reshape(3, 2), "categorical_a": np.array([[1], [2], [0]])}
    assert inputs.n_rows(table) == 3 and inputs.take(table, [2])["categorical_a"].tolist() == [[0]]
    frame = pd.DataFrame({"a": [1, 2, 3]})
    assert inputs.take(frame, [2, 0])["a"].tolist() == [3, 1]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert inputs.predict(model, table["numeric"]).shape == (3, 1)


def test_npz_validation_source_keeps_the_main_class_names(tmp_path):
    rng = np.random.default_rng(0)
    names = np.array(["cat", "dog", "owl"])
    np.savez(tmp_path / "main.npz", x=rng.normal(size=(30, 4)), y=np.arange(30) % 3, classes=names)
    np.savez(tmp_path / "val.npz", x=rng.normal(size=(6, 4)), y=np.array([2, 2, 1, 1, 0, 0]), classes=names)
    cfg = make_config("data=npz", f"data.path={tmp_path / 'main.npz'}", "data.input=tabular",
                      f"data.validation_path={tmp_path / 'val.npz'}")
    ds = load_dataset(cfg.data, "multiclass")
    assert ds.schema.classes == ["cat", "dog", "owl"] and ds.y[-6:].tolist() == [2, 2, 1, 1, 0, 0]
    assert ds.origin.tolist() == [0] * 30 + [1] * 6


def test_array_column_sequences_from_parquet_lists_and_csv_strings(tmp_path):
    rng = np.random.default_rng(1)
    series = [rng.normal(size=7).round(3) for _ in range(20)]
    frame = pd.DataFrame({"signal": [s.tolist() for s in series], "label": ["a", "b"] * 10})
    frame.to_parquet(tmp_path / "s.parquet")
    cfg = make_config("data=parquet", f"data.path={tmp_path / 's.parquet'}", "data.target=label", "data.input=sequence")
    ds = load_dataset(cfg.data, "multiclass")
    assert ds.x.shape == (20, 7, 1) and np.allclose(ds.x[3, :, 0], series[3])
    frame.assign(signal=[" ".join(map(str, s)) for s in series]).to_csv(tmp_path / "s.csv", index=False)
    cfg = make_config("data=csv", f"data.path={tmp_path / 's.csv'}", "data.target=label", "data.input=sequence")
    assert np.allclose(load_dataset(cfg.data, "multiclass").x, ds.x)
    frame.loc[4, "signal"] = [1.0, 2.0]
    frame.to_parquet(tmp_path / "bad.parquet")
    cfg = make_config("data=parquet", f"data.path={tmp_path / 'bad.parquet'}", "data.target=label",
                      "data.input=sequence")
    with pytest.raises(Exception, match=r"column 'signal' row 4 has shape \(2,\); row 0 has \(7,\)"):
        load_dataset(cfg.data, "multiclass")


def test_fitted_schema_describes_every_model_input(mixed_run):
    _, paths, _ = mixed_run
    described = {i["name"]: i for i in read_json(paths.export / "schema.json")["inputs"]}
    assert described["numeric"] == {"name": "numeric", "shape": [2], "dtype": "float32", "kind": "numeric",
                                    "columns": ["age", "income"]}
    assert described["categorical_city"]["shape"] == [1] and described["categorical_city"]["dtype"] == "int32"
    assert described["text_note_ids"]["column"] == described["text_note_weights"]["column"] == "note"
    assert described["text_note_ids"]["dtype"] == "int32" and described["text_note_weights"]["dtype"] == "float32"


def test_short_texts_are_read_as_tfidf_bags_of_ngrams_fitted_on_training_rows(tmp_path):
    from pipeline.features import ngram_bags, text_representation

    frame = text_table(rows=240)
    frame.loc[0, "review"] = "Great, not dull at all! https://t.co/Xy1"
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    cfg, paths, results = _run(tmp_path, "data=csv", f"data.path={tmp_path / 'reviews.csv'}", "data.target=sentiment",
                               "data.input=text", "goal.task=binary")
    schema = read_json(paths.split / "schema.json")
    column = schema["columns"][0]
    assert column["representation"] == "ngrams" and column["ngrams"] == 2  # 240 texts / 8 words << 1500
    assert results["design"].family == "mlp" and "text_review_bag" in (paths.design / "layers.md").read_text()
    # the vocabulary and its idf come from the training rows only (n-grams in 2+ training texts)
    raw = load_prepared(paths).x
    train = raw.iloc[np.load(paths.split / "indices.npz")["train"]]["review"]
    from pipeline.features import ngrams_of

    documents = {g for text in train for g in set(ngrams_of(text, 2))}
    assert set(column["vocabulary"]) <= documents and "not dull" not in column["vocabulary"]
    assert len(column["idf"]) == len(column["vocabulary"]) and min(column["idf"]) >= 1.0
    ids, weights = ngram_bags(pd.Series(["great great film", "zzz unseen"]), read_json_spec(column))
    assert np.allclose(np.linalg.norm(weights, axis=1), [1.0, 0.0]) and (ids[1] == 0).all()
    new = pd.DataFrame({"review": ["Superb, lovely and great!", "Awful. Dull, dreadful plot.", None]})
    new.to_csv(tmp_path / "new.csv", index=False)
    predicted = predict_file(paths.export / "model.keras", tmp_path / "new.csv")
    assert len(predicted) == 3 and predicted["prob_positive"].between(0, 1).all()
    assert text_representation(pd.Series(["ab cd ef"] * 10_000), "auto") == "sequence"  # 10,000 texts / 3 words


def read_json_spec(column: dict):
    from pipeline.schema import ColumnSpec

    return ColumnSpec(**column)
