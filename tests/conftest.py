"""Shared helpers: compose configs from the real conf/, run stages in a temporary root."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from pipeline.config import compose_params, validate_config  # noqa: E402
from pipeline.paths import Paths  # noqa: E402
from pipeline.tracking import StageRun  # noqa: E402
from tests.datagen import image_folder, mixed_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "train.epochs=3", "train.verbose=0", "train.early_stopping_patience=2",
    "search.max_trials=2", "search.trials_per_round=2", "search.rounds=1", "search.top_k=1",
    "search.subset_fraction=0.5", "search.max_epochs=2", "search.time_budget_s=120", "tracking.enabled=false",
]


def make_config(*overrides: str):
    return validate_config(compose_params(list(overrides), REPO / "conf"))


def run_stages(cfg, paths: Paths, names) -> dict:
    """Run stage functions in order, without MLflow; returns {stage: result}."""
    results = {}
    for name in names:
        module = importlib.import_module(f"pipeline.stages.{name}")
        results[name] = module.run(cfg, paths, StageRun(None, name))
    return results


ALL_STAGES = ("goal", "prepare", "split", "design", "train", "redesign", "validate", "export", "report")


@pytest.fixture(scope="session")
def breast_cancer_run(tmp_path_factory):
    """A whole tiny pipeline on breast_cancer, shared by tests that only read its outputs."""
    cfg = make_config("data=breast_cancer", *TINY)
    paths = Paths(tmp_path_factory.mktemp("breast_cancer"))
    return cfg, paths, run_stages(cfg, paths, ALL_STAGES)


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory):
    """A typed Parquet table (numeric, categorical, text columns with gaps): multiclass."""
    root = tmp_path_factory.mktemp("mixed")
    mixed_table().to_parquet(root / "table.parquet")
    cfg = make_config("data=parquet", f"data.path={root / 'table.parquet'}", "data.target=label",
                      "data.columns={plan: categorical}", "goal.threshold=0.8", *TINY)
    paths = Paths(root / "run")
    return cfg, paths, run_stages(cfg, paths, ALL_STAGES)


@pytest.fixture(scope="session")
def image_run(tmp_path_factory):
    """A folder of image files of mixed sizes, one sub-folder per class."""
    root = tmp_path_factory.mktemp("images")
    image_folder(root / "photos", per_class=10, sizes=[(16, 16), (20, 14)])
    cfg = make_config("data=images", f"data.path={root / 'photos'}", "data.image.size=[12,12]",
                      "data.image.mode=pad", "data.image.fill=noise", "data.image.scaling=symmetric",
                      "augment.crop=0.1", "augment.brightness=0.2", *TINY)
    paths = Paths(root / "run")
    return cfg, paths, run_stages(cfg, paths, ALL_STAGES), root


@pytest.fixture(scope="session")
def diabetes_search_run(tmp_path_factory):
    """Regression with an unreachable goal, so the redesign search runs (one round, 2 trials)."""
    cfg = make_config("data=diabetes", "goal.threshold=0.99", *TINY)
    paths = Paths(tmp_path_factory.mktemp("diabetes"))
    return cfg, paths, run_stages(cfg, paths, ALL_STAGES)


def copy_repo(destination: Path) -> Path:
    """The committed project files (as a fresh clone would have them) in a new git repo."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    # A repo-local identity: `dvc exp run` commits experiments, and CI may have no global one.
    for command in (["git", "init", "-q"], ["git", "config", "user.name", "pipeline tests"],
                    ["git", "config", "user.email", "tests@localhost"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "copy"]):
        subprocess.run(command, cwd=destination, check=True)
    return destination
