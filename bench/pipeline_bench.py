"""Run the default pipeline stage by stage in a scratch copy of the repo; print wall time per stage.

    python bench/pipeline_bench.py                      # the default (digits, accuracy >= 0.98)
    python bench/pipeline_bench.py data=wine train.epochs=20

Each stage runs as `python -m pipeline <stage>`, exactly as `dvc repro` runs it, so times include
process start-up (importing TensorFlow and MLflow). Tracking goes to the scratch copy's mlflow.db.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("goal", "prepare", "split", "design", "train", "redesign", "validate", "export")


def main(overrides: list[str]) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    for name in ("conf", "params.yaml"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, scratch / name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    if overrides:
        subprocess.run([sys.executable, "-m", "pipeline", "compose", *overrides], cwd=scratch, env=env,
                       check=True, capture_output=True)
    timings: dict[str, float] = {}
    for stage in STAGES:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pipeline", stage], cwd=scratch, env=env,
                                capture_output=True, text=True)
        timings[stage] = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:], sep="\n")
            print(f"stage {stage} failed with exit status {result.returncode}")
            return 1
    test = json.loads((scratch / "metrics" / "test.json").read_text())
    redesign = json.loads((scratch / "metrics" / "redesign.json").read_text())
    print(f"{'stage':<10} {'wall s':>8}")
    for stage, seconds in timings.items():
        print(f"{stage:<10} {seconds:8.1f}")
    print(f"{'total':<10} {sum(timings.values()):8.1f}")
    print(f"test {test['metric']}: {test['value']:.4f} (threshold {test['threshold']}, "
          f"goal {'met' if test['goal_met'] else 'missed'}); redesign searched: {redesign['searched']}, "
          f"trials: {redesign['trials']}")
    print(f"outputs in {scratch}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
