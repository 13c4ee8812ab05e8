"""Nothing wrong gets in: every bad value, file and request is refused before it does harm, with
one `error:` line (exit status 2), no traceback, no partial output, and the user's files unchanged."""

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import ConfigError, compose_params
from pipeline.data import load_dataset
from pipeline.errors import DataError, DesignError
from pipeline.paths import Paths
from tests.conftest import ALL_STAGES, REPO, TINY, make_config, run_stages
from tests.datagen import image_folder, mixed_table


def _load(*overrides, task="multiclass"):
    cfg = make_config(*overrides)
    return load_dataset(cfg.data, task, cfg.split)


def cli(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    environment.pop("PIPELINE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True)


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    details = [line.strip() for line in lines[errors[0] + 1:] if line.startswith(" ")]
    return " ".join([lines[errors[0]], *details])


# ---- tables that would silently change meaning -------------------------------------------------

def test_a_repeated_column_name_is_refused_naming_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("age,label,city,label\n30,a,x,a\n40,b,y,b\n")
    with pytest.raises(DataError, match="more than one column named 'label'; every column needs its own name"):
        _load("data=csv", f"data.path={path}", "data.target=label")


def test_a_separate_source_with_other_columns_is_refused(tmp_path):
    frame = mixed_table()
    frame.to_csv(tmp_path / "main.csv", index=False)
    frame.head(20).drop(columns="income").to_csv(tmp_path / "val.csv", index=False)
    with pytest.raises(DataError, match=r"its feature columns differ from the main table's \(lacks \['income'\]\)"):
        _load("data=csv", f"data.path={tmp_path / 'main.csv'}", "data.target=label",
              f"data.validation_path={tmp_path / 'val.csv'}")
    frame.head(20).assign(extra=1).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(DataError, match=r"has \['extra'\] besides"):
        _load("data=csv", f"data.path={tmp_path / 'main.csv'}", "data.target=label",
              f"data.test_path={tmp_path / 'test.csv'}")


@pytest.mark.parametrize("where", ["feature", "target"])
def test_infinite_numbers_are_refused_naming_column_and_row(tmp_path, where):
    frame = pd.DataFrame({"x": np.arange(30, dtype=float), "y": np.arange(30, dtype=float) * 2})
    frame.loc[17, "x" if where == "feature" else "y"] = np.inf
    frame.to_parquet(tmp_path / "t.parquet")
    message = "column 'x' holds an infinite value at row 17" if where == "feature" else \
        "regression target 'y' is infinite at row 17"
    with pytest.raises(DataError, match=message):
        _load("data=parquet", f"data.path={tmp_path / 't.parquet'}", "data.target=y", "goal.task=regression",
              "goal.metric=rmse", "goal.threshold=1", task="regression")


# ---- paths: nothing is read from outside the data folder -------------------------------------

def test_image_paths_leading_outside_the_data_folder_are_refused(tmp_path):
    image_folder(tmp_path / "photos", per_class=2)
    (tmp_path / "secret.png").write_bytes((tmp_path / "photos" / "hbar" / "hbar_000.png").read_bytes())
    labels = pd.DataFrame({"file": ["hbar/hbar_000.png", "../secret.png"], "label": ["a", "b"]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"names .*secret.png, outside the image folder"):
        _load("data=images", f"data.path={tmp_path / 'photos'}", f"data.labels={tmp_path / 'labels.csv'}")
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"picture": ["/etc/passwd", str(tmp_path / "secret.png")], "kind": ["a", "b"]}).to_csv(
        tmp_path / "tables" / "t.csv", index=False)
    with pytest.raises(DataError, match=r"image path at row 0 \(/etc/passwd\) leads outside"):
        _load("data=csv", f"data.path={tmp_path / 'tables' / 't.csv'}", "data.target=kind",
              "data.columns={picture: image}")


def test_a_linked_or_empty_class_folder_is_refused(tmp_path):
    image_folder(tmp_path / "photos", per_class=2)
    (tmp_path / "photos" / "loop").symlink_to(tmp_path / "photos")
    with pytest.raises(DataError, match="a class folder that is a symbolic link"):
        _load("data=images", f"data.path={tmp_path / 'photos'}")
    (tmp_path / "photos" / "loop").unlink()
    (tmp_path / "photos" / "empty").mkdir()
    with pytest.raises(DataError, match="the class folder 'empty' holds no images"):
        _load("data=images", f"data.path={tmp_path / 'photos'}")


def test_served_image_model_takes_image_content_and_reveals_no_other_file(image_run, tmp_path, monkeypatch):
    from pipeline.schema import Schema
    from pipeline.serving_model import PipelineModel

    _, paths, _, root = image_run

    class Context:
        artifacts = {"model": str(paths.export / "model.keras"), "schema": str(paths.export / "schema.json")}

    served = PipelineModel()
    served.load_context(Context)
    picture = sorted((root / "photos").rglob("*.png"))[0]
    content = base64.b64encode(picture.read_bytes()).decode()
    answer = served.predict(None, pd.DataFrame({"image_base64": [content]}))
    assert answer["prediction"][0] in Schema.from_json(paths.export / "schema.json").classes
    monkeypatch.setenv("PIPELINE_IMAGE_ROOT", str(root / "photos"))
    by_path = served.predict(None, pd.DataFrame({"image": [str(picture.relative_to(root / "photos"))]}))
    assert np.allclose(by_path.filter(like="prob_"), answer.filter(like="prob_"), atol=1e-5)
    messages = []
    for probe in ("../../../../etc/passwd", "/etc/passwd", "../photos/nothing.png", "hbar/none.png"):
        with pytest.raises(DataError) as info:
            served.predict(None, pd.DataFrame({"image": [probe]}))
        messages.append(str(info.value))
    assert set(messages) == {"request row 0: no such image under the served image folder"}  # existing or not
    with pytest.raises(DataError, match="request row 0: image_base64 is not base64"):
        served.predict(None, pd.DataFrame({"image_base64": ["not base64 at all!"]}))


# ---- config values: bounds checked before any work -------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", "batch sizes must be 1 or more"),
    ("train.learning_rate=-0.01", "`train.learning_rate`: got {'default': -0.01, 'min': -0.01, 'max': -0.01"),
    ("goal.threshold=nan", "`goal.threshold`: got nan; input should be a finite number"),
    ("model.common.dropout=1.5", "`model.common.dropout`: got {'default': 1.5, 'min': 1.5, 'max': 1.5"),
    ("augment.noise=1.5", "`augment.noise`: got 1.5; input should be less than or equal to 1"),
    ("augment.zoom=1.0", "`augment.zoom`: got 1.0; input should be less than 1"),
    ("train.refit_copies=0", "`train.refit_copies`: got 0; input should be greater than or equal to 1"),
    ("train.batch_size={default: 48, choices: [32, 64]}", "the default 48 is not one of the choices [32, 64]"),
    ("model.cnn.blocks={default: 5, min: 1, max: 3}", "the default 5 is outside [1, 3]"),
    ("model.cnn.filters={default: 16, choices: [16, 0]}", "`model.cnn.filters.choices.1`: got 0; input should be greater than 0"),
    ("search.goal_margin=-0.1", "`search.goal_margin"),
    ("tracking.uri=ftp://x/y", "`tracking.uri`: got 'ftp://x/y'; an MLflow tracking URI"),
])
def test_a_bad_value_is_refused_naming_key_value_and_bounds(override, message):
    with pytest.raises(ConfigError) as info:
        make_config(override)
    assert message in str(info.value)


def test_a_misspelled_key_names_the_allowed_ones_instead_of_suggesting_plus():
    with pytest.raises(ConfigError) as info:
        compose_params(["goal.treshold=0.9"], REPO / "conf")
    assert "`goal.treshold`: unknown key; allowed keys: task, metric, threshold, fail_on_miss" in str(info.value)
    assert "+goal" not in str(info.value)


# ---- one error line, never a traceback -------------------------------------------------------

def test_a_yaml_syntax_error_is_one_error_line(tmp_path):
    (tmp_path / "params.yaml").write_text("goal:\n  task: binary\n   metric: [accuracy\n")
    line = one_error_line(cli(["goal"], tmp_path))
    assert "params.yaml is not valid YAML at line" in line


def test_an_unknown_tracking_uri_scheme_in_the_environment_is_one_error_line(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose_params(["data=wine"], REPO / "conf")))
    line = one_error_line(cli(["goal"], tmp_path, MLFLOW_TRACKING_URI="gopher://tracking"))
    assert "MLFLOW_TRACKING_URI: got 'gopher://tracking'; an MLflow tracking URI" in line


def test_predict_refuses_a_corrupt_model_and_a_pickled_array(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.keras").write_bytes(b"PK\x03\x04 not a keras zip")
    (tmp_path / "export" / "schema.json").write_text((paths.export / "schema.json").read_text())
    line = one_error_line(cli(["predict", "--model", str(tmp_path / "export" / "model.keras"), "--input",
                               str(paths.export / "sample_input.csv")], tmp_path))
    assert "is not a loadable Keras model" in line and "not found" not in line
    np.save(tmp_path / "objects.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    line = one_error_line(cli(["predict", "--model", str(paths.export / "model.keras"), "--input",
                               str(tmp_path / "objects.npy")], tmp_path))
    assert "holds Python objects (a pickle), which are never loaded" in line and "allow_pickle" not in line


def test_an_override_typo_never_reaches_params_yaml(tmp_path):
    (tmp_path / "conf").symlink_to(REPO / "conf")
    params = compose_params(["data=wine"], REPO / "conf")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    before = (tmp_path / "params.yaml").read_text()
    line = one_error_line(cli(["goal", "goal.metric=acuracy"], tmp_path))
    assert "`goal.metric`: got 'acuracy'" in line and (tmp_path / "params.yaml").read_text() == before


# ---- faults: nothing stale, nothing lost -----------------------------------------------------

def test_when_every_design_diverges_the_redesign_stage_says_so(tmp_path):
    cfg = make_config("data=wine", *TINY, "goal.threshold=1.0", "train.optimizer=sgd", "train.learning_rate=1e9",
                      "model.common.batchnorm=false", "search.max_trials=1", "search.trials_per_round=1")
    paths = Paths(tmp_path)
    run_stages(cfg, paths, ALL_STAGES[:5])
    with pytest.raises(DesignError, match="no design learned anything usable"):
        run_stages(cfg, paths, ["redesign"])
    assert not (paths.metrics / "redesign.json").exists() and not paths.redesign.exists()
    assert not list(paths.artifacts.glob(".*.partial"))


def test_an_interrupted_redesign_leaves_no_stale_verdict(breast_cancer_run, tmp_path, monkeypatch):
    import shutil

    from pipeline.stages import redesign

    cfg, done, _ = breast_cancer_run
    paths = Paths(tmp_path)
    for name in ("prepared", "split", "design", "train"):
        shutil.copytree(done.artifacts / name, paths.artifacts / name)
    shutil.copytree(done.metrics, paths.metrics)
    assert (paths.metrics / "redesign.json").exists()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(redesign, "_redesign", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_stages(cfg, paths, ["redesign"])
    assert not (paths.metrics / "redesign.json").exists() and not paths.redesign.exists()


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- property-based: corrupted tables and config overrides -----------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CORRUPTIONS = st.lists(st.tuples(
    st.sampled_from(["cell", "drop_column", "duplicate_column", "rename_column", "truncate"]),
    st.integers(0, 10_000), st.sampled_from([np.inf, -np.inf, np.nan, "oops", "", None])), min_size=1, max_size=3)


def corrupt(frame: pd.DataFrame, changes) -> str:
    """The table as CSV text, with cells replaced, columns dropped/duplicated/renamed or rows cut."""
    frame = frame.copy().astype(object)
    header = list(frame.columns)
    for kind, where, value in changes:
        column = header[where % len(header)]
        if kind == "cell" and len(frame):  # a table cut to no rows has no cell to change
            frame.iloc[where % len(frame), where % len(header)] = value
        elif kind == "drop_column" and len(header) > 1:
            frame = frame.drop(columns=column)
        elif kind == "rename_column":
            frame = frame.rename(columns={column: f"{column}_x"})
        elif kind == "truncate":
            frame = frame.head(where % 5)
        header = list(frame.columns)
    text = frame.to_csv(index=False)
    if any(kind == "duplicate_column" for kind, _, _ in changes):
        lines = text.splitlines()
        lines = [f"{line},{line.split(',')[0]}" for line in lines]  # the first column once more, same name
        text = "\n".join(lines) + "\n"
    return text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=CORRUPTIONS)
def test_a_corrupted_table_succeeds_or_ends_with_one_clear_error(tmp_path_factory, changes):
    from pipeline.cli import main

    root = tmp_path_factory.mktemp("corrupt")
    (root / "t.csv").write_text(corrupt(mixed_table(rows=60), changes))
    before = _digest(root)
    (root / "conf").symlink_to(REPO / "conf")
    params = compose_params(["data=csv", f"data.path={root / 't.csv'}", "data.target=label",
                             "tracking.enabled=false"], REPO / "conf")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    outcome = _run_main(main, ["prepare"], root)
    assert outcome.code in (0, 2), outcome
    if outcome.code == 2:
        assert outcome.errors == 1 and "Traceback" not in outcome.err
        assert not (root / "artifacts" / "prepared").exists() and not list(root.rglob("*.partial"))
    assert {k: v for k, v in _digest(root).items() if k == "t.csv"} == {"t.csv": before["t.csv"]}


OVERRIDES = st.lists(st.sampled_from([
    "train.epochs=0", "train.epochs=3", "train.batch_size=16", "train.batch_size=-4", "goal.threshold=2",
    "goal.threshold=0.5", "goal.metric=rmse", "goal.metric=auc", "split.validation=0.7", "split.test=0.1",
    "model.family=cnn", "model.family=tcn", "model.mlp.layers={default: 2, min: 3, max: 4}",
    "model.common.dropout={default: 0.1, min: 0.0, max: 0.9}", "augment.noise=-1", "augment.rotation=0.3",
    "search.top_k=0", "search.tuner=random", "search.goal_margin=0.01", "tracking.uri=nosuch://x",
    "data.text.ngrams=5", "split=group", "split=time", "split=random", "train.learning_rate=0",
]), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(overrides=OVERRIDES)
def test_config_overrides_are_valid_or_refused_with_one_clear_error(overrides):
    try:
        cfg = make_config("data=wine", *overrides)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(("invalid config:", "config override rejected:")) and "Traceback" not in message
        assert "`" in message  # names the key
        return
    assert cfg.goal.task == "multiclass"


class _Outcome:
    def __init__(self, code, err):
        self.code, self.err = code, err
        self.errors = sum(line.startswith("error:") for line in err.splitlines())

    def __repr__(self):
        return f"exit {self.code}: {self.err[-1500:]}"


def _run_main(main, args, cwd: Path) -> _Outcome:
    import contextlib
    import io

    err = io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    finally:
        os.chdir(previous)
    return _Outcome(code, err.getvalue())


def test_json_outputs_never_hold_infinity(breast_cancer_run):
    _, paths, _ = breast_cancer_run
    for path in [*paths.artifacts.rglob("*.json"), *paths.metrics.glob("*.json")]:
        text = path.read_text()
        assert "Infinity" not in text and "NaN" not in text, path
        json.loads(text)
