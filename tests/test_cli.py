"""The command line: per-stage help and the `automl` console command."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.cli import main, stage_help
from pipeline.config import compose_params
from tests.conftest import REPO


def test_every_stage_help_lists_the_keys_dvc_yaml_declares_for_it(tmp_path, capsys):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose_params(["data=wine"], REPO / "conf")))
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    text = stage_help("train", tmp_path)
    assert text.startswith("usage: automl train") and "Stage 5, train" in text
    for key in (k for k in declared["train"]["params"] if isinstance(k, str)):
        assert f"  {key} = " in text or f"  {key}." in text  # a whole section: each of its keys
    assert "  train.seed = " in text and "search.tuner" not in text
    text = stage_help("redesign", tmp_path)
    assert "  search.time_budget_s = 140" in text and "  search.tuner = 'random'" in text  # a section, key by key
    assert main(["redesign", "--help"]) == 0 and "usage: automl redesign" in capsys.readouterr().out


def test_the_console_command_is_installed_and_runs_the_cli():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == "automl"]  # pyproject's scripts
    assert entry.value == "pipeline.cli:console"
    command = shutil.which("automl", path=str(Path(sys.executable).parent)) or shutil.which("automl")
    result = subprocess.run([command, "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "usage: automl <stage>" in result.stdout


def test_python_dash_m_and_help_agree():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "automl <stage> --help" in result.stdout
