"""The redesign search on the default digits data, and its overhead over plain KerasTuner.

    python bench/search_bench.py                       # goal: test accuracy >= 0.99, default search
    python bench/search_bench.py search.tuner=random   # any override of conf/
    python bench/search_bench.py --search-only         # or --overhead-only

Part 1 runs the redesign loop (rounds, full-data confirmation, diagnosis) from the default initial
design with tracking into a scratch MLflow store, then the refit on train + validation, as the
train and redesign stages do, and reports wall time and the test accuracy of the model it picks
and of the exported (refitted) one (target: the exported one >= 0.99 within 300 s on 2 CPU cores).

Part 2 runs the same trials twice on the whole training split: through the pipeline's tuner round
(goal-aware oracle, budget callbacks, trial records, one batched MLflow nested run per trial) and
through plain `keras_tuner.RandomSearch` with only EarlyStopping. Both see the same design space,
seed and sequence of hyperparameters (the pipeline's initial-design seeding is switched off for
this part), so the ratio of wall times is the pipeline's overhead (target: <= 1.10).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline import inputs  # noqa: E402
from pipeline.config import compose_params, validate_config  # noqa: E402
from pipeline.data import load_dataset  # noqa: E402
from pipeline.designs import DesignSpace, initial_design, preprocessing_stats  # noqa: E402
from pipeline.prepared import Rows, Splits  # noqa: E402
from pipeline.search.rounds import Candidate, RedesignLoop  # noqa: E402
from pipeline.search.space import DesignHyperModel  # noqa: E402
from pipeline.search.tuner import run_tuner  # noqa: E402
from pipeline.search.watch import TrackedSearch  # noqa: E402
from pipeline.splitting import split_indices  # noqa: E402
from pipeline.stages.redesign import finalists_cross_validated, initial_epoch_seconds, refit_in_budget, refit_reserve  # noqa: E402
from pipeline.tracking import stage_run  # noqa: E402
from pipeline.training import GOAL_LOG_KEY, fit_design, score_and_loss  # noqa: E402

OVERHEAD_TRIALS = 8
OVERHEAD_EPOCHS = 10


def setup(overrides: list[str]):
    # 260 s of search after ~25 s of training the initial design: 5 minutes in all.
    cfg = validate_config(compose_params(["goal.threshold=0.99", "search.time_budget_s=260", *overrides], REPO / "conf"))
    ds = load_dataset(cfg.data, cfg.task)
    idx = split_indices(ds.y, cfg.split_kind)
    splits = Splits(**{n: Rows(ds.x[i], ds.y[i]) for n, i in idx.items()})
    design = initial_design(cfg, ds.schema.body_kind, len(splits.train))
    design.preprocessing = preprocessing_stats(splits.train.x, splits.train.y, ds.schema)
    return cfg, ds.schema, splits, design


def search_to_goal(cfg, schema, splits, design, scratch: Path) -> None:
    """Like the train + redesign stages: train the initial design, search if it misses (keeping the
    refit's share of the budget), then refit the chosen design on train + validation (`train.refit`)."""
    with stage_run(cfg, "redesign") as tracker:
        started = time.perf_counter()
        fitted = fit_design(design, schema, splits, cfg.train, cfg.goal, verbose=0)
        value, loss = score_and_loss(fitted.model, cfg.goal, splits.validation)
        trained_facts = {"seconds": time.perf_counter() - started, "restored_epoch": fitted.restored_epoch,
                         "epochs_run": len(fitted.curves["loss"])}
        trained = Candidate(0, design, value, fitted.curves, fitted.model, loss, fitted.restored_epoch,
                            phase_epochs=fitted.phase_epochs, epoch_seconds=initial_epoch_seconds(trained_facts))
        print(f"  trained initial design ({design.family}): validation {value:.4f} "
              f"in {trained_facts['seconds']:.1f} s")
        loop = RedesignLoop(cfg, schema, splits, design, scratch / "rounds", watch=TrackedSearch(tracker),
                            log=lambda *_: None)
        outcome = loop.run(prior=(trained,), reserve_s=refit_reserve(cfg, trained_facts, splits))
        best, checked = loop.best(), {}
        if best is not trained:  # as the stage does: the two finalists cross-validated on train + validation
            best, checked = finalists_cross_validated(cfg, loop, trained, best, trained_facts, loop.begun)
        # the budget began with the search (loop.begun), as the stage's began with its run
        model, refitted = refit_in_budget(cfg, schema, splits, best, trained_facts, loop.begun,
                                          checked.get("done", False)) if cfg.train.refit else (best.model, None)
        wall = time.perf_counter() - started

    def test_score(network) -> float:
        return cfg.task.score(cfg.goal.metric, splits.test.y, inputs.predict(network, splits.test.x))

    test = test_score(model)
    print(f"search to goal: {wall:.1f} s wall, {len(outcome.history)} round(s), {len(outcome.trials)} trials, "
          f"stop: {outcome.stop_reason}")
    print(f"  chosen: {best.design.family} (round {best.round}, ranking loss {best.loss:.4f}); best validation "
          f"{cfg.goal.metric} {best.validation:.4f}; test {cfg.goal.metric} {test_score(best.model):.4f} as selected")
    if refitted:
        how = refitted.get("averaged") or (f"each of its {len(best.members)} members once" if best.members
                                           else "one model")
        print(f"  refit on train + validation: {how} "
              f"({refitted.get('seconds', 0):.1f} s{'' if refitted['done'] else ', failed: ' + refitted['reason']})")
    print(f"  exported model: test {cfg.goal.metric} {test:.4f} (target >= {cfg.goal.threshold} within 300 s: "
          f"{'yes' if test >= cfg.goal.threshold and wall <= 300 else 'NO'})")
    for entry in outcome.history:
        kinds = ", ".join(d.kind for d in entry.diagnoses) or "none"
        print(f"  round {entry.round}: {entry.trials} trials, best full-data validation {entry.best_validation}, "
              f"ensemble {entry.ensemble_validation}, diagnoses: {kinds}")


def overhead(cfg, schema, splits, design, scratch: Path) -> None:
    cfg = validate_config({**cfg.model_dump(mode="json"),
                           "search": {**cfg.search.model_dump(mode="json"), "tuner": "random", "stop_on_goal": False}})
    defaults = design.values()
    space = DesignSpace.from_config(cfg, schema.body_kind, len(splits.train))

    def hypermodel():
        return DesignHyperModel(cfg, schema, design.preprocessing, space, defaults, OVERHEAD_EPOCHS, len(splits.train))

    # Same sequence as plain RandomSearch: no initial-design seeding for this comparison.
    keras.utils.set_random_seed(0)
    with stage_run(cfg, "redesign") as tracker:
        watch = TrackedSearch(tracker)  # trials logged live to MLflow, as the redesign stage does
        started = time.perf_counter()
        result = run_tuner(
            cfg, hypermodel(), splits.train, splits.validation, scratch / "pipeline", OVERHEAD_TRIALS,
            deadline=time.monotonic() + 3600, seed=cfg.search.seed, start_at_defaults=False,
            on_trial_begin=lambda trial_id: watch.trial_started(1, 1.0, trial_id),
            on_trial_end=lambda record: watch.trial_ended(1, 1.0, record))
        pipeline_wall = time.perf_counter() - started

    keras.utils.set_random_seed(0)
    plain = kt.RandomSearch(hypermodel(), objective=kt.Objective(GOAL_LOG_KEY, "max"), max_trials=OVERHEAD_TRIALS,
                            seed=cfg.search.seed, directory=str(scratch), project_name="plain", overwrite=True)
    started = time.perf_counter()
    plain.search(splits.train.x, splits.train.y, validation_data=(splits.validation.x, splits.validation.y),
                 epochs=OVERHEAD_EPOCHS, verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping("val_loss", mode="min",
                                                          patience=cfg.train.early_stopping_patience)])
    plain_wall = time.perf_counter() - started
    plain_values = [t.hyperparameters.values for t in plain.oracle.trials.values()]
    same = [r.hyperparameters for r in result.trials] == plain_values
    print(f"overhead: {OVERHEAD_TRIALS} trials x <= {OVERHEAD_EPOCHS} epochs; pipeline {pipeline_wall:.1f} s, "
          f"plain KerasTuner {plain_wall:.1f} s, ratio {pipeline_wall / plain_wall:.3f} "
          f"(target <= 1.10; same trial sequence: {same})")
    scores = [r.score for r in result.trials if r.score is not None]
    print(f"  best val {cfg.goal.metric}: pipeline {max(scores):.4f}, plain {plain.oracle.get_best_trials(1)[0].score:.4f}")


def main(argv: list[str]) -> int:
    import os

    parts = {"search", "overhead"}
    for flag, part in (("--search-only", "overhead"), ("--overhead-only", "search")):
        if flag in argv:
            argv.remove(flag)
            parts.discard(part)
    scratch = Path(tempfile.mkdtemp(prefix="search-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
    cfg, schema, splits, design = setup(argv)
    print(f"digits: train {len(splits.train)}, validation {len(splits.validation)}, "
          f"test {len(splits.test)}; tuner {cfg.search.tuner}, budget {cfg.search.time_budget_s} s")
    if "search" in parts:
        search_to_goal(cfg, schema, splits, design, scratch)
    if "overhead" in parts:
        overhead(cfg, schema, splits, design, scratch)
    np.save(scratch / "done.npy", np.array([1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
