"""Parallel subset trials: the same search with `search.workers` 1 (in the stage) and N (local workers).

    python bench/workers_bench.py              # 1 vs 2 workers on the default digits data
    python bench/workers_bench.py --workers 4  # any N
    python bench/workers_bench.py data=wine    # any override of conf/

The stages up to `train` run once; then the redesign stage runs the same seeded random search
(the same designs, in the same order) once per worker count, each from scratch:

1. throughput: one round of a fixed number of subset trials, no goal stop; trials per minute over
   the round's wall time (workers' start-up included), and the ratio N / 1 (target on 2 cores: >= 1.6);
2. time to the goal: the same search with the goal stop on, and the stage's wall time until the
   goal is met on validation (or the budget ends).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import compose_params, validate_config  # noqa: E402
from pipeline.files import read_json  # noqa: E402
from pipeline.paths import Paths  # noqa: E402
from pipeline.search.records import load_history  # noqa: E402
from pipeline.stages import design, goal, prepare, redesign, split, train  # noqa: E402
from pipeline.tracking import StageRun  # noqa: E402

TRIALS = 12
COMMON = ["train.epochs=2", "train.verbose=0", "tracking.enabled=false", "search.tuner=random", "search.rounds=1",
          "search.top_k=1", "search.ensemble=false", "train.refit=false", "search.max_epochs=8",
          "search.resume=false", f"search.max_trials={TRIALS}", f"search.trials_per_round={TRIALS}"]
THROUGHPUT = ["goal.threshold=0.9999", "search.stop_on_goal=false", "search.time_budget_s=900"]
# the initial design (2 epochs) misses the goal; the searched designs train longer on all the data
TO_GOAL = ["goal.threshold=0.98", "search.goal_margin=0", "search.stop_on_goal=true", "search.time_budget_s=300",
           "train.epochs=20"]


def config(*overrides: str):
    return validate_config(compose_params([*COMMON, *overrides], REPO / "conf"), warn=False)


def search(paths: Paths, *overrides: str) -> dict:
    cfg = config(*overrides)
    started = time.monotonic()
    summary = redesign.run(cfg, paths, StageRun(None, "redesign", started))
    seconds = time.monotonic() - started
    history = load_history(paths.redesign / "history.json")
    trial_seconds = sum(r.trials_seconds or 0.0 for r in history)
    return {"trials": summary["trials"], "trials_seconds": trial_seconds, "stage_seconds": seconds,
            "per_minute": 60 * summary["trials"] / trial_seconds if trial_seconds else float("nan"),
            "stop": summary.get("stop_reason"), "validation": summary["validation"]}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    args, overrides = parser.parse_known_args(argv)
    paths = Paths(Path(tempfile.mkdtemp(prefix="workers-bench-")))
    base = config(*overrides, *THROUGHPUT)
    for stage in (goal, prepare, split, design, train):
        stage.run(base, paths, StageRun(None, stage.__name__.rsplit(".", 1)[1]))
    print(f"data: {base.data.source}; {TRIALS} subset trials of at most {base.search.max_epochs} epochs")
    rows = []
    for part, settings in (("throughput", THROUGHPUT), ("time to goal", TO_GOAL)):
        for workers in (1, args.workers):
            result = search(paths, *overrides, *settings, f"search.workers={workers}")
            rows.append((part, workers, result))
            print(f"{part}, {workers} worker(s): {result['trials']} trials in {result['trials_seconds']:.1f} s "
                  f"({result['per_minute']:.1f} per minute); stage {result['stage_seconds']:.1f} s; "
                  f"stopped: {result['stop']}; validation {base.goal.metric} {result['validation']:.4f}",
                  flush=True)
    one, many = rows[0][2], rows[1][2]
    print(f"\ntrials per minute, {args.workers} workers / 1: {many['per_minute'] / one['per_minute']:.2f} "
          f"(target >= 1.6 on 2 cores)")
    one, many = rows[2][2], rows[3][2]
    print(f"time to the goal: 1 worker {one['stage_seconds']:.1f} s ({one['stop']}), {args.workers} workers "
          f"{many['stage_seconds']:.1f} s ({many['stop']})")
    print("cores:", sorted(__import__("os").sched_getaffinity(0)), "| train.json:",
          read_json(paths.metrics / "train.json").get("devices"))


if __name__ == "__main__":
    main(sys.argv[1:])
