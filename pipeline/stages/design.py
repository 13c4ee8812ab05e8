"""Stage 4, design: the initial architecture for the task, with its layer table."""

import keras
import numpy as np

from pipeline import inputs
from pipeline.config import PipelineConfig
from pipeline.designs import initial_design, preprocessing_stats
from pipeline.images import ImageFiles
from pipeline.models.builder import build_model, fit_to_input, layer_table
from pipeline.models.preprocessing import augmentation_preview
from pipeline.paths import Paths
from pipeline.plots import augmentation_grid_png
from pipeline.prepared import load_splits
from pipeline.tracking import StageRun

PREVIEW_IMAGES, PREVIEW_VARIANTS = 6, 4


def augmentation_samples(cfg: PipelineConfig, x_train, schema, preprocessing: dict, path) -> None:
    """A grid of training images and random augmentations of each, as the model sees them in training."""
    spread = np.linspace(0, inputs.n_rows(x_train) - 1, PREVIEW_IMAGES).astype(int)  # across classes, not one
    sample = inputs.take(x_train, np.unique(spread))
    images = sample.read() if isinstance(sample, ImageFiles) else np.asarray(sample, dtype="float32")
    preview = augmentation_preview(schema, preprocessing, cfg.augment.settings(cfg.train.seed))
    variants = [keras.ops.convert_to_numpy(preview(images, training=True)) for _ in range(PREVIEW_VARIANTS)]
    original = keras.ops.convert_to_numpy(preview(images, training=False))
    augmentation_grid_png(original, variants, path, "training augmentation (off at validation, test, predict)")


def format_layer_table(rows: list[dict]) -> str:
    """A Markdown table: layer, type, output shape, parameters, and the total."""
    lines = ["| layer | type | output shape | params |", "|---|---|---|---:|"]
    lines += [f"| {r['layer']} | {r['type']} | {r['output_shape']} | {r['params']:,} |" for r in rows]
    lines.append(f"| **total** | | | **{sum(r['params'] for r in rows):,}** |")
    return "\n".join(lines) + "\n"


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun):
    splits, schema = load_splits(paths)
    design = fit_to_input(initial_design(cfg, schema.body_kind, len(splits.train)), schema)
    if design.note:
        print(f"design: {design.note}")
    design.preprocessing = preprocessing_stats(splits.train.x, splits.train.y, schema, cfg.train.target_transform)
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(design, schema)
    rows = layer_table(model)
    design.params = int(model.count_params())
    design.save(paths.design / "design.json")
    table = format_layer_table(rows)
    (paths.design / "layers.md").write_text(f"# Initial design: {design.family}\n\n{table}")
    tracker.log_params({"family": design.family, **design.hyperparameters})
    tracker.log_metrics({"params": design.params})
    tracker.log_artifact(paths.design / "layers.md")
    if schema.input_kind == "image" and True in cfg.augment.enabled.choices:
        augmentation_samples(cfg, splits.train.x, schema, design.preprocessing, paths.design / "augmentation_samples.png")
        tracker.log_artifact(paths.design / "augmentation_samples.png")
    print(f"design: {design.family} with {design.params:,} parameters\n{table}")
    return design
