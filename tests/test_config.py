import subprocess
import sys

import pytest
import yaml

from pipeline.config import ConfigError, compose_params, load_config, validate_config
from tests.conftest import REPO, make_config


def raw_default(*overrides):
    return compose_params(list(overrides), REPO / "conf")


def test_default_is_digits_cnn_with_its_goal():
    cfg = make_config()
    assert (cfg.data.source, cfg.goal.task, cfg.goal.metric, cfg.goal.threshold) == ("digits", "multiclass", "accuracy", 0.98)
    assert cfg.family == "cnn"
    assert cfg.search_families == ["cnn", "inception", "resnet"]


@pytest.mark.parametrize("choice, task, family", [
    ("breast_cancer", "binary", "mlp"), ("wine", "multiclass", "mlp"), ("diabetes", "regression", "mlp"),
])
def test_data_choice_sets_task_and_family(choice, task, family):
    cfg = make_config(f"data={choice}")
    assert cfg.goal.task == task and cfg.family == family


def test_overrides_win_over_data_defaults():
    cfg = make_config("data=wine", "goal.threshold=0.9", "model=mlp", "search.tuner=random")
    assert cfg.goal.threshold == 0.9 and cfg.model.family == "mlp" and cfg.search.tuner == "random"


def test_committed_params_yaml_is_the_composed_default():
    assert yaml.safe_load((REPO / "params.yaml").read_text()) == raw_default()
    load_config(REPO / "params.yaml")


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    return str(info.value)


def test_unknown_key_names_key_and_allowed_keys():
    raw = raw_default()
    raw["train"]["epoch"] = 5
    message = _error(raw)
    assert "`train.epoch`: unknown key; allowed keys: optimizer, learning_rate, lr_schedule, batch_size, label_smoothing, epochs" in message


def test_unknown_top_level_section():
    raw = raw_default()
    raw["trian"] = {}
    assert "`trian`: unknown key; allowed keys: goal, data, split, model, train, augment, search, tracking" in _error(raw)


def test_wrong_type_names_key_and_value():
    raw = raw_default()
    raw["train"]["epochs"] = "many"
    assert "`train.epochs`: got 'many'; input should be a valid integer" in _error(raw)


def test_unknown_metric_lists_metrics_for_the_task():
    raw = raw_default()
    raw["goal"]["metric"] = "acuracy"
    assert "`goal.metric`: got 'acuracy'; allowed for multiclass: accuracy, balanced_accuracy, macro_f1, auc" in _error(raw)


def test_metric_must_fit_the_task():
    raw = raw_default("data=diabetes")
    raw["goal"]["metric"] = "accuracy"
    assert "`goal.metric`: got 'accuracy'; allowed for regression: rmse, mae, r2" in _error(raw)


def test_threshold_out_of_range():
    raw = raw_default()
    raw["goal"]["threshold"] = 1.5
    assert "`goal.threshold`: got 1.5; allowed for accuracy: 0 to 1" in _error(raw)
    raw = raw_default("data=diabetes", "goal.metric=rmse", "goal.threshold=-1")
    assert "`goal.threshold`: got -1.0; allowed for rmse: 0 or more" in _error(raw)


def test_unknown_data_source_in_params():
    raw = raw_default()
    raw["data"]["source"] = "mnist"
    assert "`data.source`: got 'mnist'; allowed: 'digits', 'breast_cancer', 'wine', 'diabetes', 'csv', 'parquet', 'images' or 'npz'" in _error(raw)


def test_unknown_data_choice_on_the_command_line_lists_choices():
    with pytest.raises(ConfigError) as info:
        compose_params(["data=mnist"], REPO / "conf")
    assert "data: breast_cancer, csv, diabetes, digits, images, npz, parquet, wine" in str(info.value)


def test_task_must_match_builtin_data():
    raw = raw_default("data=wine")
    raw["goal"]["task"] = "binary"
    assert "`goal.task`: got 'binary'; data 'wine' is a multiclass task" in _error(raw)


def test_cnn_is_refused_for_tabular_input():
    assert "`model.family`: got 'cnn'; allowed for tabular input: auto, mlp, tabm, transformer" in _error(
        raw_default("data=wine", "model=cnn"))


def test_a_family_that_cannot_read_the_input_is_refused_in_the_search_families():
    message = _error(raw_default("data=wine", "model.families=[mlp,resnet]"))
    assert "`model.families`: got 'resnet'; allowed for tabular input: mlp, tabm, transformer" in message


def test_csv_without_path_says_it_is_required():
    assert "`data.path`: missing; this key is required" in _error(raw_default("data=csv"))


def test_inverted_range():
    raw = raw_default()
    raw["model"]["mlp"]["layers"] = {"min": 3, "max": 1}
    assert "`model.mlp.layers`: got {'min': 3, 'max': 1}; min (3) must not exceed max (1)" in _error(raw)


def test_ranges_narrow_and_fix_from_the_command_line():
    cfg = make_config("model.cnn.blocks.max=1", "model.cnn.blocks.default=1", "model.families=[cnn,resnet]", "train.optimizer=adamw",
                      "train.learning_rate.min=0.001", "model.common.dropout=0.25")
    assert (cfg.model.cnn.blocks.min, cfg.model.cnn.blocks.max, cfg.model.cnn.blocks.default) == (1, 1, 1)
    assert cfg.search_families == ["cnn", "resnet"]
    assert cfg.train.optimizer.choices == ["adamw"] and cfg.train.optimizer.default == "adamw"
    assert cfg.train.learning_rate.min == 0.001 and cfg.train.learning_rate.default == 0.002
    assert cfg.model.common.dropout.min == cfg.model.common.dropout.max == 0.25


def test_a_choice_outside_what_is_allowed_names_the_key():
    message = _error(raw_default("model.common.activation.choices=[relu,swishy]"))
    assert "`model.common.activation.choices.1`: got 'swishy'; allowed: 'relu', 'leaky_relu', 'gelu'" in message
    message = _error(raw_default("model.families=[cnn,vit]"))
    assert ("`model.families.1`: got 'vit'; allowed: 'backbone', 'cnn', 'inception', 'mlp', 'resnet', 'rnn', 'tabm', "
            "'tcn' or 'transformer'") in message


def test_the_initial_family_is_always_searched():
    cfg = make_config("model.family=resnet", "model.families=[cnn]")
    assert cfg.family == "resnet" and cfg.search_families == ["resnet", "cnn"]


def test_npz_needs_its_layout_declared():
    message = _error(raw_default("data=npz", "data.path=x.npz"))
    assert "`data.input`: got None; required for npz: image (n, H, W, C), sequence (n, steps, features)" in message
    raw = raw_default("data=npz", "data.path=x.npz", "data.input=sequence")
    assert validate_config(raw).data.input_kind == "sequence"


def test_goal_stage_fails_on_bad_config_before_touching_data(tmp_path):
    raw = raw_default()
    raw["goal"]["metric"] = "acuracy"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = subprocess.run([sys.executable, "-m", "pipeline", "goal"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2
    assert "`goal.metric`: got 'acuracy'; allowed for multiclass" in result.stderr
    assert not (tmp_path / "artifacts").exists()


def test_deprecated_group_column_still_works_and_says_what_to_write(capsys):
    cfg = make_config("data=csv", "data.path=t.csv", "data.target=y", "data.group_column=customer",
                      "split.method=group")
    assert cfg.split.method == "group" and cfg.split.column == "customer"
    note = capsys.readouterr().err
    assert "`data.group_column` is deprecated; read as `split.column` ('customer')" in note
    assert "-S split=group -S split.column=customer" in note


def test_split_kinds_carry_their_own_fields():
    cfg = make_config("data=csv", "data.path=t.csv", "data.target=y", "split=time", "split.column=day")
    assert type(cfg.split).__name__ == "TimeSplit" and cfg.split.key_column(cfg.data) == "day"
    assert type(make_config("split=random").split).__name__ == "RandomSplit"
    assert type(make_config().split_kind).__name__ == "StratifiedSplit"  # auto, for classes
    assert type(make_config("data=diabetes").split_kind).__name__ == "RandomSplit"
