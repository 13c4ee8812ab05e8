"""bench/gpu_bench.py runs under the JAX backend with TensorFlow absent (as on the lent GPU
machines), and prints both precisions' throughput; the numbers themselves are the bench's."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("jax")

NO_TENSORFLOW = '''import sys

class NoTensorFlow:
    """Import hook: TensorFlow is not installed (as on the lent GPU machines)."""
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("No module named 'tensorflow' (hidden by the test)")
        return None

sys.meta_path.insert(0, NoTensorFlow())
'''


@pytest.mark.slow  # about 45 s: .ci/run runs it
def test_gpu_bench_runs_under_jax_without_tensorflow(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "hidden by the test" in probe.stderr
    result = subprocess.run([sys.executable, "bench/gpu_bench.py", "--rows", "160", "--epochs", "2"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax; devices cpu:0" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| float32 |", "| mixed_bfloat16 |"))]
    assert len(rows) == 2, result.stdout
    for row in rows:  # rows/s of both paths are positive numbers
        tool, raw = (float(cell) for cell in row.strip("|").split("|")[1:3])
        assert tool > 0 and raw > 0, row
