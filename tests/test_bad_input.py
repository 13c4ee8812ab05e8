"""Bad user data: one clear message naming the file/column/row, no partial output, data untouched."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import ConfigError, compose_params
from pipeline.data import load_dataset
from pipeline.errors import DataError
from pipeline.paths import Paths
from tests.conftest import REPO, TINY, make_config, run_stages
from tests.datagen import image_folder, mixed_table, time_series


def _load(*overrides, task="multiclass"):
    return load_dataset(make_config(*overrides).data, task)


def _table(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def test_missing_table_and_folder(tmp_path):
    with pytest.raises(DataError, match="data.path: file not found: .*nope.parquet"):
        _load("data=parquet", f"data.path={tmp_path / 'nope.parquet'}", "data.target=y")
    with pytest.raises(DataError, match="data.path: image folder not found: .*nope"):
        _load("data=images", f"data.path={tmp_path / 'nope'}")


def test_corrupt_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="data.path: cannot read .*bad.parquet as Parquet"):
        _load("data=parquet", f"data.path={tmp_path / 'bad.parquet'}", "data.target=y")


def test_corrupt_image_is_named(tmp_path):
    image_folder(tmp_path / "photos", per_class=2)
    broken = tmp_path / "photos" / "hbar" / "hbar_001.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated
    with pytest.raises(DataError, match=r"hbar_001.png: not a readable image"):
        _load("data=images", f"data.path={tmp_path / 'photos'}")


def test_image_listed_in_labels_but_missing(tmp_path):
    image_folder(tmp_path / "photos", per_class=1)
    pd.DataFrame({"file": ["square/square_000.png", "gone.png"], "label": ["a", "b"]}).to_csv(
        tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="gone.png: image file not found"):
        _load("data=images", f"data.path={tmp_path / 'photos'}", f"data.labels={tmp_path / 'labels.csv'}")


def test_mixed_image_sizes_without_a_target_size(tmp_path):
    image_folder(tmp_path / "photos", per_class=2, sizes=[(16, 16), (20, 14)])
    with pytest.raises(DataError, match=r"images differ in size \(.*16x16, .*20x14\); set data.image.size"):
        _load("data=images", f"data.path={tmp_path / 'photos'}")
    with pytest.raises(DataError, match=r"size 20x14 differs from 16x16 and data.image.mode is none"):
        _load("data=images", f"data.path={tmp_path / 'photos'}", "data.image.size=[16,16]", "data.image.mode=none")


def test_unknown_feature_column(tmp_path):
    path = _table(tmp_path, mixed_table())
    with pytest.raises(DataError, match=r"column\(s\) \['colour'\] not found; columns are \['age'"):
        _load("data=csv", f"data.path={path}", "data.target=label", "data.features=[age,colour]")


def test_missing_target_column(tmp_path):
    path = _table(tmp_path, mixed_table())
    with pytest.raises(DataError, match=r"column\(s\) \['tier'\] not found"):
        _load("data=csv", f"data.path={path}", "data.target=tier")


def test_target_with_missing_values(tmp_path):
    frame = mixed_table()
    frame.loc[7, "label"] = None
    path = _table(tmp_path, frame, "t.parquet")
    with pytest.raises(DataError, match="target column 'label' has a missing value at row 7"):
        _load("data=parquet", f"data.path={path}", "data.target=label")


def test_non_numeric_value_in_a_numeric_column(tmp_path):
    frame = mixed_table()
    frame["income"] = frame["income"].astype(object)
    frame.loc[12, "income"] = "n/a?"
    path = _table(tmp_path, frame)
    with pytest.raises(DataError, match=r"column 'income' must be numeric; row 12 holds 'n/a\?'"):
        _load("data=csv", f"data.path={path}", "data.target=label")


def test_missing_value_where_the_strategy_is_error(tmp_path):
    path = _table(tmp_path, mixed_table())
    with pytest.raises(DataError, match="column 'age' has a missing value at row .*data.missing.age is error"):
        _load("data=csv", f"data.path={path}", "data.target=label", "data.missing={age: error}")


def test_missing_strategy_that_does_not_fit_the_column_kind(tmp_path):
    path = _table(tmp_path, mixed_table())
    with pytest.raises(DataError, match="data.missing.city: got 'median'; allowed for a categorical column"):
        _load("data=csv", f"data.path={path}", "data.target=label", "data.missing={city: median}")


def test_empty_table(tmp_path):
    (tmp_path / "e.csv").write_text("age,label\n")
    with pytest.raises(DataError, match="has no rows"):
        _load("data=csv", f"data.path={tmp_path / 'e.csv'}", "data.target=label")


def test_class_too_small_to_stratify(tmp_path):
    frame = mixed_table(rows=60)
    frame.loc[0, "label"] = "enterprise"  # a single row
    path = _table(tmp_path, frame)
    cfg = make_config("data=csv", f"data.path={path}", "data.target=label", *TINY)
    with pytest.raises(DataError, match="class 'enterprise' has 1 row\\(s\\); a stratified split needs at least 2"):
        run_stages(cfg, Paths(tmp_path / "run"), ("goal", "prepare", "split"))


def test_validation_source_with_an_unknown_class(tmp_path):
    frame = mixed_table()
    path = _table(tmp_path, frame)
    other = frame.head(10).assign(label="gold")
    val = _table(tmp_path, other, "v.csv")
    with pytest.raises(DataError, match="holds 'gold' at row 0, a class the main data does not have"):
        _load("data=csv", f"data.path={path}", "data.target=label", f"data.validation_path={val}")


def test_text_input_needs_one_text_column(tmp_path):
    path = _table(tmp_path, mixed_table())
    with pytest.raises(DataError, match="data.input is text, which reads one text column"):
        _load("data=csv", f"data.path={path}", "data.target=label", "data.input=text")


def test_windows_need_enough_rows_and_a_time_column(tmp_path):
    path = _table(tmp_path, time_series(rows=10))
    with pytest.raises(DataError, match="10 rows are too few for windows of 14 rows"):
        _load("data=csv", f"data.path={path}", "data.target=demand", "data.time_column=date",
              "data.window={length: 14}", "goal.task=regression", "goal.metric=rmse", "goal.threshold=5",
              task="regression")
    with pytest.raises(ConfigError, match="forecasting windows need a csv/parquet table and data.time_column"):
        make_config("data=csv", f"data.path={path}", "data.target=demand", "data.window={length: 3}",
                    "goal.task=regression", "goal.metric=rmse", "goal.threshold=5")


def test_split_settings_are_checked_before_any_work():
    with pytest.raises(ConfigError, match=r"`split.column`: missing; this key is required \(e.g. -S split.column=...\)"):
        make_config("split=group")
    with pytest.raises(ConfigError, match="`split.column`: got None; a group split needs the column whose values"):
        make_config("split.method=group")
    with pytest.raises(ConfigError, match="`split.method`: got 'group'; a group split reads a column of a csv/parquet"):
        make_config("split=group", "split.column=digit")
    with pytest.raises(ConfigError, match="`split.method`: got 'stratified'; stratified needs classes"):
        make_config("data=diabetes", "split=stratified")
    with pytest.raises(ConfigError, match="`split.column`: got 'date'; a random split reads no column"):
        make_config("split=random", "split.column=date")
    with pytest.raises(ConfigError, match="`split.method`: got 'shuffled'; allowed: auto, random, stratified, group, "
                                          "time"):
        make_config("split.method=shuffled")


def _digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failing_prepare_exits_non_zero_leaves_nothing_and_keeps_user_data(tmp_path):
    image_folder(tmp_path / "photos", per_class=2)
    broken = tmp_path / "photos" / "vbar" / "vbar_000.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    before = _digest(tmp_path / "photos")
    params = compose_params(["data=images", f"data.path={tmp_path / 'photos'}", *TINY], REPO / "conf")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "pipeline", "prepare"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "vbar_000.png: not a readable image" in errors[0]
    assert not (tmp_path / "artifacts" / "prepared").exists()
    assert not list(tmp_path.rglob("*.partial"))
    assert _digest(tmp_path / "photos") == before


def test_prepare_never_writes_into_the_users_table(tmp_path):
    path = _table(tmp_path, mixed_table(), "t.parquet")
    before = hashlib.md5(path.read_bytes()).hexdigest()
    cfg = make_config("data=parquet", f"data.path={path}", "data.target=label", *TINY)
    run_stages(cfg, Paths(tmp_path / "run"), ("goal", "prepare", "split"))
    assert hashlib.md5(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "t.parquet"]
    assert np.load(tmp_path / "run" / "artifacts" / "prepared" / "data.npz")["y"].shape == (240,)
