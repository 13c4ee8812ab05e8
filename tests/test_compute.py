"""The `compute` section: devices and precision chosen per machine, mixed precision with float32
heads (same accuracy within noise on CPU with bfloat16), data parallel training over two
virtual devices under JAX, and the refusals."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from pipeline import compute
from pipeline.compute import Device, choose_devices, choose_precision
from pipeline.config import ComputeConfig, ConfigError, compose_params
from pipeline.errors import DesignError
from tests.conftest import REPO, TINY, make_config

CPU, GPU_V100, GPU_PASCAL, TPU = (Device("cpu:0", "cpu"), Device("gpu:0", "gpu", 7.0), Device("gpu:1", "gpu", 6.1),
                                  Device("tpu:0", "tpu"))


@pytest.fixture(autouse=True)
def float32_after():
    yield
    compute.apply(ComputeConfig(devices="cpu", precision="float32"))


def test_precision_auto_follows_the_devices():
    assert choose_precision("auto", (CPU,)) == "float32"
    assert choose_precision("auto", (GPU_V100,)) == "mixed_float16"
    assert choose_precision("auto", (GPU_V100, GPU_PASCAL)) == "float32"  # an old GPU gains nothing
    assert choose_precision("auto", (TPU,)) == "mixed_bfloat16"
    assert choose_precision("mixed_bfloat16", (CPU,)) == "mixed_bfloat16"


def test_devices_auto_takes_every_accelerator_else_one_cpu():
    assert choose_devices("auto", [CPU, Device("cpu:1", "cpu")]) == (CPU,)
    assert choose_devices("auto", [GPU_V100, GPU_PASCAL, CPU]) == (GPU_V100, GPU_PASCAL)
    assert choose_devices("cpu", [GPU_V100, CPU]) == (CPU,)
    assert choose_devices([1], [GPU_V100, GPU_PASCAL, CPU]) == (GPU_PASCAL,)
    with pytest.raises(DesignError, match=r"compute.devices: \[3\] are not all among this machine's devices "
                                          r"\(0: gpu:0, 1: cpu:0\)"):
        choose_devices([3], [GPU_V100, CPU])


def test_bad_compute_values_name_the_key():
    with pytest.raises(ConfigError, match=r"compute.precision.*'half'"):
        make_config("data=digits", "compute.precision=half")
    with pytest.raises(ConfigError, match=r"compute.devices"):
        make_config("data=digits", "compute.devices=[-1]")
    assert make_config("data=digits", "compute.devices=[0,1]").compute.devices == [0, 1]


def test_mixed_bfloat16_keeps_the_head_in_float32_and_the_accuracy(tmp_path):
    from sklearn.datasets import load_digits

    from pipeline.designs import initial_design
    from pipeline.models.builder import build_model
    from pipeline.prepared import Rows, Splits
    from pipeline.schema import Scaling, Schema
    from pipeline.tasks import task_named
    from pipeline.training import fit_design, score

    digits = load_digits()
    x, y = digits.images[..., None].astype("float32"), digits.target
    splits = Splits(Rows(x[:1000], y[:1000]), Rows(x[1000:1300], y[1000:1300]), Rows(x[1300:], y[1300:]))
    schema = Schema(source="digits", task=task_named("multiclass"), input_kind="image", input_shape=[8, 8, 1],
                    features=["pixels"], scaling=Scaling("rescale", 1 / 16), classes=[str(i) for i in range(10)])
    cfg = make_config("data=digits", "train.epochs=8", "train.verbose=0", "tracking.enabled=false")
    accuracy = {}
    for precision in ("float32", "mixed_bfloat16"):
        chosen = compute.apply(ComputeConfig(devices="cpu", precision=precision))
        assert chosen.precision == precision and keras.mixed_precision.global_policy().name == precision
        design = initial_design(cfg, train_rows=1000)
        fitted = fit_design(design, schema, splits, cfg.train, cfg.goal)
        assert np.all(np.isfinite(fitted.curves["loss"]))
        accuracy[precision] = score(fitted.model, cfg.goal, splits.test)
    model = build_model(design, schema)
    assert model.get_layer("output").compute_dtype == "float32" and model.get_layer("block0_conv0").compute_dtype == \
        "bfloat16"
    assert model.predict(x[:2], verbose=0).dtype == np.float32
    assert accuracy["float32"] > 0.9 and abs(accuracy["mixed_bfloat16"] - accuracy["float32"]) < 0.05, accuracy


pytest.importorskip("jax")


def test_data_parallel_training_over_two_devices_under_jax(tmp_path):
    params = compose_params(["data=digits", *TINY, "compute.devices=all"], REPO / "conf")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    for stage in ("goal", "prepare", "split", "design", "train"):
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "train: on 2 devices (cpu:0, cpu:1), float32, data parallel: global batch" in result.stdout
    train = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert train["backend"] == "jax" and train["devices"] == ["cpu:0", "cpu:1"] and train["validation"] > 0.5
