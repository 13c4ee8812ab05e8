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


JAX = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}


def design_and_train_on_jax(root, overrides: list[str]) -> dict:
    """The stages up to `train` as `python -m pipeline <stage>` under JAX; train.json."""
    (root / "params.yaml").write_text(yaml.safe_dump(compose_params([*overrides, *TINY], REPO / "conf")))
    for stage in ("goal", "prepare", "split", "design", "train"):
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=root, env=JAX,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((root / "metrics" / "train.json").read_text())


def test_design_and_train_run_on_jax(tmp_path):
    train = design_and_train_on_jax(tmp_path, ["data=digits"])
    assert train["backend"] == "jax" and train["validation"] > 0.5
    assert (tmp_path / "artifacts" / "train" / "model.keras").exists()


def test_backbone_trains_in_two_phases_and_reloads_on_jax(tmp_path):
    """A pretrained backbone (a weights file) under JAX: both phases, then save and load in safe mode."""
    script = f"""
import numpy as np
from bench.transfer_bench import TARGET_CLASSES, config, shape_schema, shape_splits, train
from pipeline.models import transfer
from pipeline.models.builder import load_model
weights = {str(tmp_path / "mnv3s.weights.h5")!r}
transfer.application("mobilenet_v3_small", "none", (32, 32, 3)).save_weights(weights)
splits = shape_splits(TARGET_CLASSES, 8, 4, 4, seed=0)
cfg = config("model=backbone", f"model.backbone.weights={{weights}}", "model.backbone.fine_tune_epochs=1",
             "train.epochs=1")
model, _, fitted = train(cfg, splits, shape_schema(len(TARGET_CLASSES)))
assert fitted.fine_tuned and len(fitted.curves["loss"]) == 2, fitted.curves
model.save({str(tmp_path / "m.keras")!r})
again = load_model({str(tmp_path / "m.keras")!r})
assert np.allclose(again.predict(splits.test.x, verbose=0), model.predict(splits.test.x, verbose=0), atol=1e-5)
import keras
print("backend", keras.backend.backend())
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=JAX, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout


def test_tabm_ensemble_trains_per_member_and_reloads_on_jax(tmp_path):
    """The ensemble family's per-member loss and averaged metrics under JAX, on a regression table."""
    train = design_and_train_on_jax(tmp_path, ["data=diabetes", "model=tabm", "model.tabm.members=4"])
    assert train["backend"] == "jax" and -10 < train["validation"] <= 1  # a finite R2 after 3 epochs
    script = ("import keras; m = keras.saving.load_model('artifacts/train/model.keras', safe_mode=True); "
              "print(m.output_shape, m.get_layer('members').members)")
    result = subprocess.run([sys.executable, "-c", f"import pipeline.models.layers; {script}"], cwd=tmp_path, env=JAX,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "(None, 1) 4" in result.stdout, result.stderr[-2000:]
