"""Stage 3, split: seeded train/validation/test indices (stratified for classification)."""

import numpy as np
from sklearn.model_selection import train_test_split

from pipeline.config import PipelineConfig
from pipeline.data import DataError
from pipeline.paths import SPLITS, Paths, load_prepared, write_json
from pipeline.tracking import StageRun


def split_indices(y: np.ndarray, validation: float, test: float, seed: int, stratify: bool) -> dict:
    """Indices per split: test first, then validation out of what is left."""
    everything = np.arange(len(y))
    labels = y if stratify else None
    try:
        rest, test_idx = train_test_split(everything, test_size=test, random_state=seed, stratify=labels)
        rest_labels = y[rest] if stratify else None
        train_idx, val_idx = train_test_split(
            rest, test_size=validation / (1.0 - test), random_state=seed, stratify=rest_labels
        )
    except ValueError as exc:
        counts = dict(zip(*np.unique(y, return_counts=True))) if stratify else {}
        smallest = min(counts.values()) if counts else None
        raise DataError(
            f"split: cannot make a {'stratified ' if stratify else ''}split of {len(y)} rows "
            f"(validation={validation}, test={test})"
            + (f"; the smallest class has {smallest} rows" if smallest is not None else "")
            + f": {exc}"
        ) from None
    return {"train": np.sort(train_idx), "validation": np.sort(val_idx), "test": np.sort(test_idx)}


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    _, y, schema = load_prepared(paths)
    stratify = cfg.split.stratify and schema.task in ("binary", "multiclass")
    indices = split_indices(y, cfg.split.validation, cfg.split.test, cfg.split.seed, stratify)
    paths.split.mkdir(parents=True, exist_ok=True)
    np.savez(paths.split / "indices.npz", **indices)
    summary = {"stratified": stratify, "seed": cfg.split.seed, "rows": {n: int(len(indices[n])) for n in SPLITS}}
    if schema.classes and schema.task != "multilabel":
        summary["class_counts"] = {
            n: {schema.classes[c]: int((y[indices[n]] == c).sum()) for c in range(len(schema.classes))}
            for n in SPLITS
        }
    write_json(paths.split / "summary.json", summary)
    tracker.log_params({"rows": summary["rows"], "stratified": stratify})
    print("split: " + ", ".join(f"{n} {summary['rows'][n]}" for n in SPLITS) + (" (stratified)" if stratify else ""))
    return summary


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("split")
