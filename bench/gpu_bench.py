"""Training throughput on this machine's devices: the tool's training path against a raw
`model.fit` of the same model, in float32 and in mixed precision.

    KERAS_BACKEND=jax python bench/gpu_bench.py                          # small: proves it runs (CPU)
    KERAS_BACKEND=jax python bench/gpu_bench.py --rows 20000 --size 64 --epochs 6   # on a GPU

The data are generated 10-class shape pictures (bench/suite_data.py), the model is the tool's
initial convnet design for them. The tool's path is `pipeline.training.fit_design` (callbacks,
early stopping, validation each epoch, the compute section's devices and precision); the raw
path compiles the same built model with the same optimizer, loss and batch and calls
`model.fit` with the validation rows. Throughput is training rows per second over the epochs
after the first (the first one compiles). Needs only Keras, its backend, NumPy
and Pillow: it runs under JAX without TensorFlow installed.

Targets on a GPU: tool / raw >= 0.9; mixed precision >= 1.5 x float32 on the convnet.
Parallel trial workers (1 vs N) are not measured: `search.workers` is not built yet.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shape_data(rows: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from bench.suite_data import shape_picture

    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 10
    return np.stack([shape_picture(int(k), rng, size) for k in labels]), labels


def epoch_rate(stamps: list[float], rows: int) -> float:
    """Rows per second over the epochs after the first."""
    return rows * (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def measure(precision: str, x, y, epochs: int, size: int) -> dict:
    import keras

    from pipeline import compute
    from pipeline.config import ComputeConfig, compose_params, validate_config
    from pipeline.designs import initial_design
    from pipeline.models.builder import build_model
    from pipeline.prepared import Rows, Splits
    from pipeline.schema import Scaling, Schema
    from pipeline.tasks import task_named
    from pipeline.training import compile_model, fit_design, steps_per_epoch

    chosen = compute.apply(ComputeConfig(devices="auto", precision=precision))
    cut = int(len(x) * 0.8)
    splits = Splits(Rows(x[:cut], y[:cut]), Rows(x[cut:], y[cut:]), Rows(x[cut:], y[cut:]))
    schema = Schema(source="bench", task=task_named("multiclass"), input_kind="image", input_shape=[size, size, 3],
                    features=["pixels"], scaling=Scaling("rescale", 1 / 255), classes=[str(i) for i in range(10)])
    # Early stopping can never fire: both paths run every epoch.
    cfg = validate_config(compose_params(["data=digits", f"train.epochs={epochs}", "train.verbose=0",
                                          f"train.early_stopping_patience={epochs + 1}", "tracking.enabled=false"],
                                         REPO / "conf"))
    design = initial_design(cfg, train_rows=cut)
    batch = design.hyperparameters["batch_size"]

    tool_stamps: list[float] = []
    started = time.perf_counter()
    fit_design(design, schema, splits, cfg.train, cfg.goal, on_epoch=lambda epoch, logs: tool_stamps.append(
        time.perf_counter()))
    tool_seconds = time.perf_counter() - started

    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(design, schema)
    compile_model(model, schema.task, design.hyperparameters, steps_per_epoch(cut, batch), epochs, cfg.goal.metric)
    raw_stamps: list[float] = []
    started = time.perf_counter()
    model.fit(splits.train.x, splits.train.y, batch_size=batch, epochs=epochs, verbose=0,
              validation_data=(splits.validation.x, splits.validation.y),
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: raw_stamps.append(
                  time.perf_counter()))])
    raw_seconds = time.perf_counter() - started
    return {"precision": chosen.precision, "devices": ", ".join(d.name for d in chosen.devices), "batch": batch,
            "tool": epoch_rate(tool_stamps, cut), "raw": epoch_rate(raw_stamps, cut),
            "tool_seconds": tool_seconds, "raw_seconds": raw_seconds}


def mixed_precision_for(devices) -> str:
    """The mixed policy `compute.precision: auto` picks on these devices; bfloat16 where it picks float32 (CPUs)."""
    from pipeline.compute import choose_precision

    chosen = choose_precision("auto", devices)
    return chosen if chosen != "float32" else "mixed_bfloat16"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1200, help="generated pictures (80%% train, 20%% validation)")
    parser.add_argument("--size", type=int, default=32, help="picture side in pixels (at least 32)")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    if args.size < 32 or args.epochs < 2:
        parser.error("--size must be at least 32 (the shapes need room) and --epochs at least 2 (the first compiles)")

    import keras

    from pipeline.compute import choose_devices, local_devices

    x, y = shape_data(args.rows, args.size)
    mixed = mixed_precision_for(choose_devices("auto", local_devices()))
    results = [measure(p, x, y, args.epochs, args.size) for p in ("float32", mixed)]
    print(f"backend {keras.backend.backend()}; devices {results[0]['devices']}; {args.rows} pictures "
          f"{args.size}x{args.size}, {args.epochs} epochs, batch {results[0]['batch']}")
    print("| precision | tool rows/s | raw model.fit rows/s | tool / raw | tool s (all epochs) | raw s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['precision']} | {r['tool']:.0f} | {r['raw']:.0f} | {r['tool'] / r['raw']:.2f} | "
              f"{r['tool_seconds']:.1f} | {r['raw_seconds']:.1f} |")
    print(f"mixed precision ({mixed}) / float32, tool path: {results[1]['tool'] / results[0]['tool']:.2f}x "
          f"(target on a GPU >= 1.5x); tool / raw in float32: {results[0]['tool'] / results[0]['raw']:.2f} "
          f"(target >= 0.9)")
    print("1 vs N trial workers: not measured (search.workers is not built)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
