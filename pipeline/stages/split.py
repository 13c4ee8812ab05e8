"""Stage 3, split: seeded train/validation/test rows, and the column encodings fitted on train.

Writes the split indices, the schema with the column state learned from the training rows
only (fill values, vocabularies), and a summary: rows and class balance per split, and how
many validation/test rows exactly duplicate a training row (leakage).
"""

import numpy as np

from pipeline import inputs
from pipeline.config import PipelineConfig
from pipeline.features import fit_specs
from pipeline.files import replaced_dir, write_json
from pipeline.paths import Paths
from pipeline.prepared import SPLITS, load_prepared, model_inputs
from pipeline.splitting import duplicates_of_train, row_fingerprints, split_indices
from pipeline.tracking import StageRun


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    dataset = load_prepared(paths)
    schema, y = dataset.schema, dataset.y
    kind = cfg.split_kind
    indices = split_indices(y, kind, key=dataset.key, origin=dataset.origin, classes=schema.classes)
    if schema.columns:
        schema.columns = fit_specs(dataset.x.iloc[indices["train"]], schema.columns)
    schema.inputs = inputs.describe(model_inputs(inputs.head(dataset.x, 1), schema), schema)
    duplicates = duplicates_of_train(row_fingerprints(dataset.x), indices)
    summary = {"method": kind.method, "seed": kind.seed, "rows": {n: int(len(indices[n])) for n in SPLITS},
               "duplicates_of_train_rows": duplicates}
    if kind.key_column(cfg.data):
        summary["column"] = kind.key_column(cfg.data)
    if dataset.origin is not None:
        summary["separate_sources"] = [n for n, o in (("validation", 1), ("test", 2)) if (dataset.origin == o).any()]
    if schema.task.single_label:
        summary["class_counts"] = {
            n: {schema.classes[c]: int((y[indices[n]] == c).sum()) for c in range(len(schema.classes))}
            for n in SPLITS
        }
    with replaced_dir(paths.split) as out:
        np.savez(out / "indices.npz", **indices)
        schema.to_json(out / "schema.json")
        write_json(out / "summary.json", summary)
    tracker.log_params({"rows": summary["rows"], "split_method": kind.method})
    print(f"split ({kind.method}): " + ", ".join(f"{n} {summary['rows'][n]}" for n in SPLITS))
    for name, count in summary.get("class_counts", {}).items():
        print(f"split: {name} classes " + ", ".join(f"{c}={k}" for c, k in count.items()))
    for name, count in duplicates.items():
        if count:
            print(f"split: WARNING {count} {name} row(s) exactly duplicate a training row (leakage: "
                  f"the {name} score will read high); deduplicate the data or split by group")
    return summary
