"""Stage 2, prepare: load the source, define inputs/outputs, write arrays and the schema.

Value scaling is declared here (schema `scaling`) and applied by the model's first layer,
fitted on the training split, so the exported model takes raw inputs.
"""

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.data import load_dataset
from pipeline.paths import Paths
from pipeline.tracking import StageRun


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun):
    dataset = load_dataset(cfg.data, cfg.goal.task)
    schema = dataset.schema
    paths.prepared.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(paths.prepared / "data.npz", x=dataset.x, y=dataset.y)
    schema.to_json(paths.prepared / "schema.json")
    tracker.log_params({"rows": schema.n_rows, "input_shape": schema.input_shape, "input_kind": schema.input_kind})
    tracker.log_artifact(paths.prepared / "schema.json")
    outputs = f"{len(schema.classes)} classes" if schema.classes else "a value"
    print(f"prepare: {schema.n_rows} rows of {schema.input_kind} input {tuple(schema.input_shape)} -> {outputs}")
    return schema


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("prepare")
