"""Latency and throughput of an exported model, through the same loading path as `predict`.

    python bench/latency_bench.py                                  # artifacts/export (run dvc repro first)
    python bench/latency_bench.py --model artifacts/export/model.keras --repeats 200

Reads the export's sample input (raw rows, images or arrays), encodes it as `predict` does,
and times the model alone: one row at a time, and batches of 256 (the sample repeated).
Prints median and 95th-percentile latency and rows per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import inputs  # noqa: E402
from pipeline.images import ImageFiles  # noqa: E402
from pipeline.predict import load_exported, read_input  # noqa: E402


def sample_input(export: Path):
    for name in ("sample_input.csv", "sample_input.npy", "sample_images"):
        if (export / name).exists():
            return export / name
    raise SystemExit(f"no sample input in {export}; run `dvc repro` first")


def timed(call, repeats: int) -> np.ndarray:
    call()  # warm-up: traces the graph once
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(REPO / "artifacts" / "export" / "model.keras"))
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    model, schema = load_exported(args.model)
    x, _ = read_input(sample_input(Path(args.model).parent), schema)
    if isinstance(x, ImageFiles):
        x = x.read()  # decoding is the loader's cost, not the model's
    one = inputs.head(x, 1)
    batch = inputs.take(x, np.arange(256) % inputs.n_rows(x))
    print(f"model {args.model} ({model.count_params():,} parameters), backend {__import__('keras').backend.backend()}")
    for name, rows, data in (("single row", 1, one), ("batch of 256", 256, batch)):
        seconds = timed(lambda: model.predict_on_batch(data), args.repeats)
        print(f"{name:13s} p50 {1000 * np.median(seconds):8.2f} ms   p95 {1000 * np.percentile(seconds, 95):8.2f} ms"
              f"   {rows / np.median(seconds):10.0f} rows/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
