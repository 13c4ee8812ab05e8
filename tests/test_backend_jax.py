"""The design and train stages under KERAS_BACKEND=jax, unchanged."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from pipeline.config import compose_params
from tests.conftest import REPO, TINY

pytest.importorskip("jax")


def test_design_and_train_run_on_jax(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(compose_params(["data=digits", *TINY], REPO / "conf")))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    for stage in ("goal", "prepare", "split", "design", "train"):
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    train = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert train["backend"] == "jax" and train["validation"] > 0.5
    assert (tmp_path / "artifacts" / "train" / "model.keras").exists()
