"""The tool against the plain baselines a practitioner writes in ten lines, on 9 data sets, offline.

    python bench/suite.py                           # every data set (about 30 minutes on 2 cores)
    python bench/suite.py --only tweets,diamonds    # some of them
    python bench/suite.py --out bench/out/before    # where the table and the runs go
    python bench/suite.py --holdout                 # the 4 held-out tables instead (about 15 minutes)
    python bench/suite.py --new                     # the 8 new data sets instead (about 30 minutes)
    python bench/suite.py --small                   # the 5 small tables instead (about 15 minutes)

For each data set, as a new user would run it: the data is written to files and the tool gets
only data/target/task/metric overrides (bench/suite_data.py). The tool's own `goal`,
`prepare` and `split` stages run first; the baselines are then fitted on exactly its train +
validation rows and scored on its test rows; the goal threshold is set to the best baseline's
test score and the rest of the pipeline runs with its defaults, each stage as
`python -m pipeline <stage>` (what `dvc repro` runs), tracking into a scratch MLflow store.

Baselines: for tables and text, those the validate stage fits (pipeline/baselines.py):
HistGradientBoosting and a linear model for tables, TF-IDF word 1-2-grams + a linear model for
text; here fitted on train + validation; a fixed small Keras CNN for images; three Conv1D(25, 5) layers
+ Dense (Adam 1e-2, 60 epochs) for sequences; ridge regression and gradient boosting on the
window for forecasting. The held-out tables (`--holdout`, bench/suite_data.py's HOLDOUT) are
kept out of choosing defaults: they check that a change generalises; the new data sets (`--new`,
NEW) were first run after the defaults were set. Writes suite.md (the table) and suite.json into
--out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.suite_data import CASES, HOLDOUT, NEW, SMALL  # noqa: E402
from pipeline.files import read_json  # noqa: E402
from pipeline.images import ImageFiles  # noqa: E402
from pipeline.objective import Objective  # noqa: E402
from pipeline.paths import Paths  # noqa: E402
from pipeline.prepared import load_prepared  # noqa: E402

FIRST, REST = ("goal", "prepare", "split"), ("goal", "design", "train", "redesign", "validate", "export", "report")


def stage(name: str, root: Path, env: dict, log) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipeline", name], cwd=root, env=env, capture_output=True, text=True)
    log.write(f"$ python -m pipeline {name}\n{result.stdout}\n{result.stderr}\n")
    log.flush()
    if result.returncode != 0:
        raise RuntimeError(f"stage {name} failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def compose(root: Path, overrides: list[str], env: dict) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "compose", *overrides], cwd=root, env=env, check=True,
                   capture_output=True)


# ---- baselines -------------------------------------------------------------------------------

def shared_baselines(x_fit, y_fit, x_test, schema) -> dict:
    """The validate stage's own baselines for the input kind (pipeline/baselines.py), the training
    prior left out: for tables, a linear model and gradient boosting; for text, TF-IDF 1-2-grams +
    a linear model."""
    from pipeline.baselines import baselines_for, outputs

    def fitted(baseline):
        def fit():
            estimator = baseline.make().fit(baseline.features(x_fit), y_fit)
            return outputs(estimator, baseline.features(x_test), schema)
        return fit

    return {b.name: fitted(b) for b in baselines_for(schema) if not b.name.startswith("always")}


def _keras_fit(layers, x_fit, y_fit, x_test, schema, learning_rate, epochs):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x_fit.shape[1:]), *layers,
                              keras.layers.Dense(len(schema.classes), activation="softmax")])
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_fit, y_fit, batch_size=32, epochs=epochs, verbose=0)
    return model.predict(x_test, verbose=0)


def image_baselines(x_fit, y_fit, x_test, schema) -> dict:
    import keras

    def cnn():
        scale = float(np.max(x_fit)) or 1.0
        layers = [keras.layers.Rescaling(1.0 / scale), keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
                  keras.layers.MaxPooling2D(), keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
                  keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(128, activation="relu")]
        return _keras_fit(layers, x_fit, y_fit, x_test, schema, 1e-3, 30)
    return {"small CNN (2 conv blocks, 30 epochs)": cnn}


def sequence_baselines(x_fit, y_fit, x_test, schema) -> dict:
    if schema.task.predicts_value:  # forecasting windows: a linear autoregression and boosting on the window
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import RidgeCV

        flat_fit, flat_test = x_fit.reshape(len(x_fit), -1), x_test.reshape(len(x_test), -1)
        return {"ridge on the window": lambda: RidgeCV().fit(flat_fit, y_fit).predict(flat_test),
                "gradient boosting on the window":
                    lambda: HistGradientBoostingRegressor(random_state=0).fit(flat_fit, y_fit).predict(flat_test)}
    import keras

    def conv1d():
        mean, std = x_fit.mean(axis=(0, 1)), x_fit.std(axis=(0, 1)) + 1e-8
        layers = [keras.layers.Conv1D(25, 5, activation="relu") for _ in range(3)] + [keras.layers.Flatten()]
        return _keras_fit(layers, (x_fit - mean) / std, y_fit, (x_test - mean) / std, schema, 1e-2, 60)
    return {"3 x Conv1D(25, 5) + Dense (60 epochs)": conv1d}


BASELINES = {"tabular": shared_baselines, "text": shared_baselines, "image": image_baselines,
             "sequence": sequence_baselines}


def run_baselines(root: Path, metric: str) -> dict:
    """Each baseline fitted on the tool's train + validation rows, scored on its test rows."""
    dataset = load_prepared(Paths(root))
    indices = np.load(root / "artifacts" / "split" / "indices.npz")
    fit_rows = np.sort(np.concatenate([indices["train"], indices["validation"]]))
    x, y, schema = dataset.x, dataset.y, dataset.schema

    def rows(index):
        if isinstance(x, ImageFiles):
            return x.take(index).read()
        return x.iloc[index].reset_index(drop=True) if isinstance(x, pd.DataFrame) else x[index]

    results = {}
    for name, fit in BASELINES[schema.input_kind](rows(fit_rows), y[fit_rows], rows(indices["test"]), schema).items():
        started = time.perf_counter()
        raw = fit()
        results[name] = {"score": schema.task.score(metric, y[indices["test"]], np.asarray(raw)),
                         "seconds": round(time.perf_counter() - started, 1)}
    return results


# ---- the suite -------------------------------------------------------------------------------

def run_case(case, out: Path, extra: list[str], initial_only: bool = False) -> dict:
    root = out / case.name
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    shutil.copytree(REPO / "conf", root / "conf")
    overrides = case.make(root / "data")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_ROOT", None)
    timings: dict[str, float] = {}
    with open(root / "run.log", "w") as log:
        compose(root, [*overrides, *extra], env)
        for name in FIRST:
            timings[name] = stage(name, root, env, log)
        metric = read_json(root / "artifacts" / "goal.json")["metric"]
        baselines = run_baselines(root, metric)
        objective = Objective(metric)
        best_name = objective.best(baselines, value=lambda n: baselines[n]["score"])
        threshold = baselines[best_name]["score"]
        always = objective.info.low if objective.info.low is not None else -1e9
        goal = threshold if not initial_only else (1e12 if objective.direction == "min" else always)
        compose(root, [*overrides, *extra, f"goal.threshold={goal!r}"], env)
        for name in REST:
            # the goal stage runs again with the threshold; a user's run has each stage once
            timings[name] = stage(name, root, env, log)
    seconds = sum(timings.values())
    test = read_json(root / "metrics" / "test.json")
    summary = read_json(root / "artifacts" / "redesign" / "summary.json")
    design = read_json(root / "artifacts" / "redesign" / "design.json")
    low, high = test["interval_95"]["low"], test["interval_95"]["high"]
    family = design["family"] if design["family"] != "ensemble" else "ensemble of " + _members(design)
    # equal to float32 rounding counts as equal: the tool's converted linear model or trees compute in
    # float32 what the baseline's scikit-learn model computes in float64
    won = (not objective.better_than(threshold, test["value"])
           or math.isclose(threshold, test["value"], rel_tol=1e-6))
    covered = min(low, high) <= threshold <= max(low, high)
    return {"data": case.name, "kind": case.kind, "rows": read_json(root / "artifacts" / "split" / "summary.json")["rows"],
            "metric": metric, "baselines": baselines, "best_baseline": best_name, "threshold": threshold,
            "stage_seconds": {k: round(v, 1) for k, v in timings.items()},
            "tool": {"score": test["value"], "low": low, "high": high, "seconds": round(seconds, 1),
                     "searched": summary["searched"], "trials": summary.get("trials", 0), "chosen": family},
            "verdict": "win" if won else ("within the 95% interval" if covered else "loss")}


def _members(design: dict) -> str:
    """An ensemble design's members, an inner ensemble's in parentheses: (mlp+mlp)+boosted_trees."""
    return "+".join(f"({_members(m)})" if m["family"] == "ensemble" else m["family"] for m in design["members"])


def markdown(results: list[dict]) -> str:
    lines = ["| data set | kind | rows (train/val/test) | metric | plain baselines: test score (seconds) | "
             "tool: test score [95% interval] | tool seconds | search | chosen | verdict |",
             "|---|---|---|---|---|---|---:|---|---|---|"]
    for r in results:
        rows = "/".join(str(r["rows"][k]) for k in ("train", "validation", "test"))
        baselines = "; ".join(f"{name} {b['score']:.4f} ({b['seconds']:g} s)" for name, b in r["baselines"].items())
        tool = r["tool"]
        search = f"yes, {tool['trials']} trials" if tool["searched"] else "no"
        lines.append(f"| {r['data']} | {r['kind']} | {rows} | {r['metric']} | {baselines} | {tool['score']:.4f} "
                     f"[{tool['low']:.4f}, {tool['high']:.4f}] | {tool['seconds']:.0f} | {search} | {tool['chosen']} | "
                     f"{r['verdict']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated data set names")
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "suite"))
    parser.add_argument("--initial-only", action="store_true",
                        help="a goal every design meets: no search, the initial design alone (for development)")
    sets = parser.add_mutually_exclusive_group()
    sets.add_argument("--holdout", action="store_true",
                      help="the held-out tables (kept out of choosing defaults) instead of the suite")
    sets.add_argument("--new", action="store_true",
                      help="the data sets first run after the defaults were set, instead of the suite")
    sets.add_argument("--small", action="store_true",
                      help="the small tables (a few hundred to two thousand rows) instead of the suite")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run (key=value)")
    args = parser.parse_args(argv)
    cases = HOLDOUT if args.holdout else NEW if args.new else SMALL if args.small else CASES
    chosen = [c for c in cases if not args.only or c.name in args.only.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for case in chosen:
        started = time.perf_counter()
        try:
            results.append(run_case(case, out, args.overrides, args.initial_only))
        except Exception as exc:  # noqa: BLE001  (one failed data set must not hide the others)
            print(f"{case.name}: FAILED: {exc}", flush=True)
            continue
        r = results[-1]
        print(f"{case.name}: tool {r['tool']['score']:.4f} vs best baseline {r['threshold']:.4f} "
              f"({r['best_baseline']}): {r['verdict']}; {r['tool']['seconds']:.0f} s "
              f"(case {time.perf_counter() - started:.0f} s)", flush=True)
        (out / "suite.json").write_text(json.dumps(results, indent=2, default=float))
        (out / "suite.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
