"""Transfer learning on generated images: a network trained from scratch vs the same data with a
backbone taken from a model trained on other classes, at 20, 50 and 200 images per class.

    python bench/transfer_bench.py                 # 20 50 200 images per class
    python bench/transfer_bench.py --per-class 20

The source model is the tool's default image design (`cnn`) trained on five shape classes
(circle, square, triangle, cross, ring; 300 images each, 32x32 colour on cluttered noise) and
exported as a `.keras` file. The target task is five other shapes (hbar, vbar, diagonal, dots,
corner). Both contenders train with the tool's own training path (`fit_design`: early stopping
on validation, the default training choices); the transferred one is the `backbone` family
with `network: <the .keras file>`: its head first on the frozen backbone, then its top layers
at a tenth of the learning rate. Test: 100 images per class, never trained on. Prints a
Markdown table: accuracy and seconds per contender and training-set size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.suite_data import shape_picture  # noqa: E402
from pipeline.config import compose_params, validate_config  # noqa: E402
from pipeline.designs import initial_design  # noqa: E402
from pipeline.prepared import Rows, Splits  # noqa: E402
from pipeline.schema import RESCALE_UNIT, Schema  # noqa: E402
from pipeline.tasks import task_named  # noqa: E402
from pipeline.training import fit_design, score  # noqa: E402

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def shape_rows(kinds, per_class: int, seed: int) -> Rows:
    """`per_class` generated 32x32 colour pictures of each shape kind, labelled 0..len(kinds)-1, shuffled."""
    rng = np.random.default_rng(seed)
    x = np.stack([shape_picture(kind, rng) for kind in kinds for _ in range(per_class)])
    y = np.repeat(np.arange(len(kinds)), per_class)
    order = rng.permutation(len(y))
    return Rows(x[order], y[order], x[order])


def shape_splits(kinds, per_class: int, validation_per_class: int, test_per_class: int, seed: int) -> Splits:
    return Splits(shape_rows(kinds, per_class, seed), shape_rows(kinds, validation_per_class, seed + 1),
                  shape_rows(kinds, test_per_class, seed + 2))


def shape_schema(classes: int) -> Schema:
    return Schema(source="shapes", task=task_named("multiclass"), input_kind="image", input_shape=[32, 32, 3],
                  features=["pixels"], scaling=RESCALE_UNIT, classes=[str(i) for i in range(classes)])


def config(*overrides: str):
    """The tool's defaults for a multiclass image task, with `overrides`."""
    return validate_config(compose_params(["data=npz", "data.path=unused.npz", "data.input=image",
                                           "goal.task=multiclass", "goal.metric=accuracy", "goal.threshold=0.99",
                                           "train.verbose=0", "tracking.enabled=false", *overrides], REPO / "conf"))


def train(cfg, splits: Splits, schema: Schema):
    """(model, seconds, fitted record): the config's initial design trained with the tool's training path."""
    design = initial_design(cfg, train_rows=len(splits.train))
    started = time.monotonic()
    fitted = fit_design(design, schema, splits, cfg.train, cfg.goal)
    return fitted.model, time.monotonic() - started, fitted


def source_model(folder: Path, per_class: int = 300, epochs: int = 30) -> Path:
    """The default image design trained on the source shapes, exported as a .keras file."""
    splits = shape_splits(SOURCE_CLASSES, per_class, 60, 10, seed=100)
    model, _, _ = train(config("model=cnn", f"train.epochs={epochs}"), splits, shape_schema(len(SOURCE_CLASSES)))
    path = folder / "source.keras"
    model.save(path)
    return path


def compare(backbone: Path, per_class: int, seed: int = 0, epochs: int = 40) -> dict:
    """Test accuracy and seconds of scratch vs transferred on the target shapes."""
    splits = shape_splits(TARGET_CLASSES, per_class, max(10, per_class // 4), 100, seed=seed)
    schema = shape_schema(len(TARGET_CLASSES))
    results = {}
    for name, overrides in (("scratch (cnn)", ["model=cnn"]),
                            ("transferred (backbone)", ["model=backbone", f"model.backbone.network={backbone}"])):
        cfg = config(*overrides, f"train.epochs={epochs}")
        model, seconds, fitted = train(cfg, splits, schema)
        results[name] = {"accuracy": score(model, cfg.goal, splits.test), "seconds": seconds,
                         "phases": fitted.phase_epochs}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[20, 50, 200])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        backbone = source_model(Path(folder))
        print(f"source model: {time.monotonic() - started:.0f} s")
        print("| images per class | scratch: accuracy (s) | transferred: accuracy (s) | epochs per phase |")
        print("|---:|---|---|---|")
        for per_class in args.per_class:
            r = compare(backbone, per_class)
            scratch, moved = r["scratch (cnn)"], r["transferred (backbone)"]
            print(f"| {per_class} | {scratch['accuracy']:.3f} ({scratch['seconds']:.0f}) | "
                  f"{moved['accuracy']:.3f} ({moved['seconds']:.0f}) | {moved['phases']} |", flush=True)


if __name__ == "__main__":
    main()
