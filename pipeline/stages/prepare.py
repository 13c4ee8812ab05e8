"""Stage 2, prepare: load the source, define inputs/outputs, write raw features, targets and the schema.

Nothing is fitted here: value scaling and column encodings are declared in the schema and
fitted on the training split later (split stage, design stage), so the exported model and
the predict path take raw inputs. Every row, column and image is checked first; on a bad
input the stage fails with one message and leaves no output behind.
"""

from collections import Counter
from pathlib import Path

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.data import Dataset, load_dataset
from pipeline.files import replaced_dir
from pipeline.images import ImageFiles
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
    if tracker.enabled:
        tracker.log_input(mlflow_dataset(dataset, cfg), context="source")
    outputs = f"{len(schema.classes)} classes" if schema.classes else "a value"
    kinds = ""
    if schema.columns:
        counts = Counter(column.kind for column in schema.columns)
        kinds = " (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + " columns)"
    print(f"prepare: {schema.n_rows} rows of {schema.input_kind} input {tuple(schema.input_shape)}{kinds} -> {outputs}")
    return schema


def mlflow_dataset(dataset: Dataset, cfg: PipelineConfig):
    """The loaded data as an `mlflow.data` dataset: the file it came from (or the code, for a
    packaged data set), a digest of its content, its rows and schema; targets as encoded."""
    import mlflow.data

    source = str(Path(cfg.data.path).resolve()) if cfg.data.path else None
    name = cfg.data.source if source is None else Path(source).name
    x, y = dataset.x, dataset.y
    if isinstance(x, ImageFiles):
        x = pd.DataFrame({"file": [str(f) for f in x.files]})
    if isinstance(x, pd.DataFrame):
        frame, targets = x, None
        if y.ndim == 1:
            targets = "target" if "target" not in x.columns else "__target__"
            frame = x.assign(**{targets: y})
        return mlflow.data.from_pandas(frame, source=source, name=name, targets=targets)
    if source is None:
        return mlflow.data.from_numpy(x, targets=y, name=name)
    return mlflow.data.from_numpy(x, targets=y, source=source, name=name)
