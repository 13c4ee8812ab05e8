"""Stage 2, prepare: load the source, define inputs/outputs, write raw features, targets and the schema.

Nothing is fitted here: value scaling and column encodings are declared in the schema and
fitted on the training split later (split stage, design stage), so the exported model and
the predict path take raw inputs. Every row, column and image is checked first; on a bad
input the stage fails with one message and leaves no output behind.
"""

from collections import Counter

from pipeline.config import PipelineConfig
from pipeline.data import load_dataset
from pipeline.files import replaced_dir
from pipeline.paths import Paths
from pipeline.prepared import save_prepared
from pipeline.tracking import StageRun


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun):
    dataset = load_dataset(cfg.data, cfg.task, cfg.split)
    schema = dataset.schema
    with replaced_dir(paths.prepared) as out:
        save_prepared(dataset, out)
    tracker.log_params({"rows": schema.n_rows, "input_shape": schema.input_shape, "input_kind": schema.input_kind})
    tracker.log_artifact(paths.prepared / "schema.json")
    outputs = f"{len(schema.classes)} classes" if schema.classes else "a value"
    kinds = ""
    if schema.columns:
        counts = Counter(column.kind for column in schema.columns)
        kinds = " (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + " columns)"
    print(f"prepare: {schema.n_rows} rows of {schema.input_kind} input {tuple(schema.input_shape)}{kinds} -> {outputs}")
    return schema
