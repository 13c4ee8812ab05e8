"""Peak memory of training on an image folder: it must not grow with the folder's size.

    python bench/image_memory_bench.py                   # 1500 then 6000 PNGs of 128x128 RGB
    python bench/image_memory_bench.py --images 8000 --cap-mb 256

Generates two folders of PNG images (one sub-folder per class), the larger `--images` big and
the smaller a quarter of it, and runs the pipeline's stages (goal, prepare, split, design,
train) on each as `python -m pipeline <stage>` processes, exactly as `dvc repro` does. It
prints each stage's peak resident memory (from the OS, per process). Arrays in memory would
make the train stage's peak grow by the decoded size of the extra images; read lazily, one
batch at a time, it grows by less than the fixed cap (`--cap-mb`), far below that size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.datagen import image_folder  # noqa: E402

STAGES = ("goal", "prepare", "split", "design", "train")


def run_stage(stage: str, cwd: Path, env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one stage process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pipeline", stage], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        print(output[-3000:])
        raise SystemExit(f"{stage} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux


def run_pipeline(images: int, size: int, epochs: int, scratch: Path) -> dict:
    """Generate `images` PNGs and run the stages on them; {stage: (seconds, peak MB)}."""
    per_class = images // 3
    started = time.perf_counter()
    image_folder(scratch / "photos", per_class=per_class, size=(size, size))
    on_disk = sum(p.stat().st_size for p in (scratch / "photos").rglob("*.png")) / 2**20
    decoded = 3 * per_class * size * size * 3 * 4 / 2**20  # float32, as the model reads them
    print(f"\n{3 * per_class} PNG images of {size}x{size}x3 (made in {time.perf_counter() - started:.1f} s): "
          f"{on_disk:.0f} MB on disk, {decoded:.0f} MB decoded as float32")
    shutil.copytree(REPO / "conf", scratch / "conf")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    overrides = ["data=images", f"data.path={scratch / 'photos'}", f"train.epochs={epochs}", "train.verbose=0",
                 "model.family=cnn", "model.cnn.filters=16", "train.batch_size=64", "tracking.enabled=false"]
    subprocess.run([sys.executable, "-m", "pipeline", "compose", *overrides], cwd=scratch, env=env, check=True,
                   capture_output=True)
    result = {"decoded_mb": decoded}
    for stage in STAGES:
        seconds, peak = run_stage(stage, scratch, env)
        result[stage] = peak
        print(f"  {stage:8s} {seconds:7.1f} s   peak RSS {peak:7.0f} MB")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cap-mb", type=float, default=256.0, help="allowed growth of the train peak")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    small, large = (run_pipeline(n, args.size, args.epochs, Path(tempfile.mkdtemp(prefix="image-memory-bench-")))
                    for n in (args.images // 4, args.images))
    extra_data = large["decoded_mb"] - small["decoded_mb"]
    growth = large["train"] - small["train"]
    print(f"\ntrain peak RSS: {small['train']:.0f} MB -> {large['train']:.0f} MB (+{growth:.0f} MB) while the data "
          f"grew by {extra_data:.0f} MB decoded ({large['decoded_mb']:.0f} MB in all)")
    print(f"growth under the {args.cap_mb:.0f} MB cap: {growth < args.cap_mb}; "
          f"extra data larger than the cap: {extra_data > args.cap_mb}")
    return 0 if growth < args.cap_mb < extra_data else 1


if __name__ == "__main__":
    raise SystemExit(main())
