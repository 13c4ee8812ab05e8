"""Stage 4, design: the initial architecture for the task, with its layer table."""

import keras

from pipeline.config import PipelineConfig
from pipeline.designs import initial_design, preprocessing_stats
from pipeline.models import build_model, layer_table
from pipeline.models.builder import fit_to_input
from pipeline.paths import Paths, load_splits, write_json
from pipeline.tracking import StageRun


def format_layer_table(rows: list[dict]) -> str:
    """A Markdown table: layer, type, output shape, parameters, and the total."""
    lines = ["| layer | type | output shape | params |", "|---|---|---|---:|"]
    lines += [f"| {r['layer']} | {r['type']} | {r['output_shape']} | {r['params']:,} |" for r in rows]
    lines.append(f"| **total** | | | **{sum(r['params'] for r in rows):,}** |")
    return "\n".join(lines) + "\n"


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    splits, schema = load_splits(paths)
    design, note = fit_to_input(initial_design(cfg), schema)
    if note:
        print(f"design: {note}")
        design["note"] = note
    design["preprocessing"] = preprocessing_stats(*splits["train"], schema)
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(design, schema, design["preprocessing"])
    rows = layer_table(model)
    design["params"] = int(model.count_params())
    write_json(paths.design / "design.json", design)
    table = format_layer_table(rows)
    (paths.design / "layers.md").write_text(f"# Initial design: {design['family']}\n\n{table}")
    tracker.log_params({"family": design["family"], **design["hyperparameters"]})
    tracker.log_metrics({"params": design["params"]})
    tracker.log_artifact(paths.design / "layers.md")
    print(f"design: {design['family']} with {design['params']:,} parameters\n{table}")
    return design


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("design")
