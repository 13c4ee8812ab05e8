"""Stage 6, redesign: if the trained design misses the goal on validation, search for a better one.

The loop (pipeline/search/rounds.py) searches on a subset, confirms the best designs on all the
training data, diagnoses their learning curves and reshapes the space, until the goal is met on
validation or a budget ends. The winner replaces the trained model only if it is better on
validation; with `search.ensemble`, the average of the best designs competes like any design.
Then, where time allows, `search.finalist_folds`-fold cross-validation on train + validation
decides between the search's choice and the trained initial design (pipeline/search/finalists.py).
For tables, gradient-boosted trees (`search.boosted_trees`) and a linear model regularised as
cross-validation on the training rows chooses (`search.linear_model`), converted into Keras
layers, and the trees' average with the chosen network, compete with it last, on validation
(for a rate or a binary AUC, those within a standard error of the best are level, and the lowest
ranking loss wins).
Writes the chosen model and its layer table, a summary, every trial (trials.csv) and the
redesign history (history.json for machines, history.md for people).
"""

import hashlib
import json
import shutil
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd

from pipeline import compute
from pipeline.config import PipelineConfig
from pipeline.designs import Design
from pipeline.errors import DesignError
from pipeline.files import read_json, replaced_dir, write_json
from pipeline.models import linear as linear_models
from pipeline.models import trees as tree_models
from pipeline.models.builder import ensemble_of, layer_table, load_model
from pipeline.objective import paired_loss_gap
from pipeline.paths import Paths
from pipeline.plots import curves_png
from pipeline.prepared import load_splits, subsample
from pipeline.search.finalists import cross_validate
from pipeline.search.records import history_markdown, save_history, write_trials
from pipeline.search.rounds import Candidate, RedesignLoop, train_score
from pipeline.search.watch import TrackedSearch
from pipeline.search.workers import SearchSpec, WorkerPool, new_run_id, share_gpu_memory
from pipeline.tracking import StageRun
from pipeline.training import ranking_losses, refit, score_and_loss


def write_curves(curves: dict, path) -> None:
    """The chosen model's learning curves (per epoch, or per boosting round), for `dvc plots`."""
    frame = pd.DataFrame({name: pd.Series(values, dtype="float64") for name, values in curves.items()})
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    frame.to_csv(path, index=False)


def curves_caption(design: Design) -> str:
    """What the chosen model's learning curves (curves.csv/png) show."""
    if design.is_ensemble:
        return "learning curves of the chosen model (an ensemble: its best member)"
    if design.family == tree_models.FAMILY:
        return "learning curves of the chosen model (boosted trees: one point per boosting round)"
    if design.family == linear_models.FAMILY:
        return "no learning curves: the chosen linear model is fitted by scikit-learn in one solve"
    return "learning curves of the chosen model"


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    trained = read_json(paths.metrics / "train.json")
    initial = Design.load(paths.design / "design.json")
    if cfg.search.workers > 1:
        share_gpu_memory()
    devices = compute.apply(cfg.compute).devices
    # No stale verdict survives an interrupted run: the outputs appear together, when complete.
    (paths.metrics / "redesign.json").unlink(missing_ok=True)
    shutil.rmtree(paths.redesign, ignore_errors=True)
    paths.search_state.mkdir(parents=True, exist_ok=True)  # declared (persisted) even when no search runs
    with replaced_dir(paths.redesign) as out:
        summary = _redesign(cfg, paths, tracker, out, trained, initial, devices)
    write_json(paths.metrics / "redesign.json", {k: summary[k] for k in (
        "searched", "trials", "chosen", "validation", "goal_met_on_validation")})
    for name in ("summary.json", "trials.csv", "history.json", "history.md", "curves.csv"):
        tracker.log_artifact(paths.redesign / name)
    refitted = summary.get("refit", {}).get("done")
    averaged = summary.get("refit", {}).get("averaged")
    print(f"redesign: kept the {summary['chosen']} model ({summary['reason']}); validation {cfg.goal.metric} "
          f"{summary['validation']:.4f}" + ("; refitted on train + validation" if refitted else "")
          + (f" as {averaged}" if averaged else ""))
    return summary


def _redesign(cfg: PipelineConfig, paths: Paths, tracker: StageRun, out: Path, trained: dict, initial: Design,
              devices=()) -> dict:
    """Choose (search if needed) and refit the model, writing every redesign output into `out`."""
    objective = cfg.objective
    splits, schema = load_splits(paths)
    summary = {"metric": cfg.goal.metric, "threshold": cfg.goal.threshold,
               "trained_validation": trained["validation"], "searched": False}

    margin = objective.stop_margin(cfg.search.goal_margin, len(splits.validation))
    summary["stop_margin"] = margin
    state = search_state(cfg, paths)
    with ExitStack() as workers:
        # Start the search workers now when a search will run, so that they load their libraries
        # and data while this stage scores the trained design.
        pool = (workers.enter_context(parallel_trials(cfg, state, tracker, paths, devices))
                if cfg.search.workers > 1 and not objective.met(trained["validation"], margin) else None)
        # fitted while the workers start; their seconds count against search.time_budget_s like the search's
        trees = boosted_trees(cfg, schema, splits) if cfg.search.boosted_trees and tree_models.reads(schema) else None
        linear = linear_model(cfg, schema, splits) if cfg.search.linear_model and linear_models.reads(schema) else None
        trained_run = _trained_run(paths, cfg, initial, trained, splits)
        loop = RedesignLoop(cfg, schema, splits, initial, state, watch=TrackedSearch(tracker))
        failure = loop.failure(trained_run)
        if failure:
            summary["trained_failure"] = failure
            print(f"redesign: the trained initial design cannot be chosen: {failure}")
        if not failure and objective.met(trained["validation"], margin):
            chosen = trained_run
            summary.update(chosen="trained", reason="the trained initial design meets the goal on validation"
                           + (f" by the margin {margin:.4f}" if margin else ""), trials=0)
        else:
            if pool is None and cfg.search.workers > 1:
                pool = workers.enter_context(parallel_trials(cfg, state, tracker, paths, devices))
            loop.workers = pool
            chosen, facts = _search(cfg, loop, tracker, out, splits, trained_run if not failure else None, trained)
            summary.update(facts)
    # (the workers are stopped: the refit below runs alone)
    if trees is not None or linear is not None:
        chosen = weigh_plain_models(cfg, loop, chosen, trees, linear, summary)
    summary.update(validation=chosen.validation, ranking_loss=chosen.loss, design=chosen.design.family)

    chosen.design.save(out / "design.json")
    write_curves(chosen.curves, out / "curves.csv")
    summary["curves"] = curves_caption(chosen.design)
    curves_png(pd.read_csv(out / "curves.csv"), out / "curves.png", summary["curves"])
    model = chosen.model
    if cfg.train.refit:
        model, summary["refit"] = refit_in_budget(cfg, schema, splits, chosen, trained, tracker.started,
                                                  summary.get("cross_validation", {}).get("done", False))
    if model is not chosen.model:
        chosen.model.save(out / "selected.keras")  # the model validation chose, before its refit
    model.save(out / "model.keras")
    write_json(out / "layers.json", layer_table(model))  # for the report
    summary["goal_met_on_validation"] = objective.met(summary["validation"])
    summary["margin_on_validation"] = objective.margin(summary["validation"])
    write_json(out / "summary.json", summary)
    tracker.log_metrics({"validation": summary["validation"], "trials": summary["trials"]})
    tracker.set_tags({"redesign.chosen": summary["chosen"], "redesign.reason": summary["reason"]})
    tracker.log_params({"chosen": chosen_params(chosen.design, summary["chosen"])})
    return summary


# fitted by scikit-learn and converted into Keras layers: no epochs, no copies to average
PLAIN_FAMILIES = (tree_models.FAMILY, linear_models.FAMILY)
TREE_ROW_OUTPUTS = 100_000  # the trees fit on at most this many rows x outputs (about 40 s on 2 cores)
TREE_BUDGET_SHARE = 0.25  # of search.time_budget_s: the trees' fits together stop boosting when it is spent


def boosted_trees(cfg: PipelineConfig, schema, splits) -> Candidate:
    """Gradient-boosted trees fitted on the training split, converted to Keras, scored on validation.
    A table with categories gets two fits, with and without the categories' target encodings, and
    keeps the better on validation: the encoding lines categories up for a split (ames, hpc_jobs),
    but on a category with little signal it fits the training rows' noise (churn's state).
    The fits share TREE_BUDGET_SHARE of search.time_budget_s (each what is left of it over the fits
    left), so that many classes or columns cannot leave the search no time (boosting fits one tree
    per class per round)."""
    rows = tree_rows(splits.train, schema, cfg.search.seed)
    encodings = (True, False) if schema.columns_of("categorical") else (False,)
    share = TREE_BUDGET_SHARE * cfg.search.time_budget_s
    candidates, spent = [], 0.0
    for done, encode in enumerate(encodings):
        limit = max(0.0, share - spent) / (len(encodings) - done)
        fitted = tree_models.fit_trees(schema, rows, cfg.search.seed, encode=encode, seconds=limit)
        spent += fitted.seconds
        value, loss = score_and_loss(fitted.model, cfg.goal, splits.validation)
        print(f"redesign: gradient-boosted trees ({fitted.design.hyperparameters['trees']} per output"
              f"{', categories target-encoded' if encode else ''}, fitted on {len(rows)} of {len(splits.train)} "
              f"training rows in {fitted.seconds:g} s"
              + (f", stopped at its {limit:.0f} s share of search.time_budget_s" if fitted.cut_short else "")
              + f"): validation {cfg.goal.metric} {value:.4f}")
        candidates.append((Candidate(0, fitted.design, value, {}, fitted.model, loss), fitted))
    kept, fitted = cfg.objective.best_within_noise(
        candidates, value=lambda c: c[0].validation, loss=lambda c: c[0].loss, rows=len(splits.validation),
        positives=schema.task.positives(splits.validation.y)) or candidates[-1]
    return replace(kept, curves=tree_models.learning_curves(fitted, schema, cfg.goal.metric, rows, splits.validation))


def linear_model(cfg: PipelineConfig, schema, splits) -> Candidate:
    """Logistic (classes) or ridge (values) regression fitted on the training split, converted to
    Keras, scored on validation."""
    fitted = linear_models.fit_linear(schema, splits.train, cfg.search.seed)
    value, loss = score_and_loss(fitted.model, cfg.goal, splits.validation)
    print(f"redesign: linear model ({linear_models.describe(fitted.design.hyperparameters)}, fitted on "
          f"{len(splits.train)} training rows in {fitted.seconds:g} s): validation {cfg.goal.metric} {value:.4f}")
    return Candidate(0, fitted.design, value, {}, fitted.model, loss)


def tree_rows(rows, schema, seed: int):
    """`rows`, or a seeded (stratified) subsample of TREE_ROW_OUTPUTS / outputs of them: boosting
    fits one tree per output per round, so its time grows with rows x outputs."""
    per_output = TREE_ROW_OUTPUTS / schema.task.n_outputs(len(schema.classes))
    return subsample(rows, min(1.0, per_output / max(1, len(rows))), seed, schema.task.single_label)


def weigh_plain_models(cfg: PipelineConfig, loop: RedesignLoop, chosen: Candidate, trees: Candidate | None,
                       linear: Candidate | None, summary: dict) -> Candidate:
    """The best on validation of the chosen network, the trees and their average, and the linear
    model (those given): of those within one standard error of the best goal metric (a rate or a binary
    AUC; other metrics: equal ones), the lowest ranking loss, then the network; but the linear model, the
    simplest, when it is among them and its ranking loss is within a standard error of that one's, paired
    row by row (`loss_gap`): the one-standard-error rule (Breiman et al. 1984; Hastie et al., The Elements
    of Statistical Learning, 7.10): nothing on validation then says the more complex model is better,
    and the simpler one is smaller, faster and has less to overfit. `summary` says which and why."""
    options = {"network": chosen}
    if trees is not None:
        model = ensemble_of([chosen.model, trees.model])
        value, loss = score_and_loss(model, cfg.goal, loop.splits.validation)
        options["boosted trees"] = trees
        options["their average"] = Candidate(chosen.round, Design.ensemble([chosen.design, trees.design]), value,
                                             chosen.curves, model, loss, chosen.restored_epoch,
                                             members=[chosen, trees])
    if linear is not None:
        options["linear model"] = linear
    usable = [c for c in options.values() if c is chosen or loop.failure(c) is None]
    best = loop.best(usable, within_noise=True)
    top = loop.best(usable)
    noise = cfg.objective.standard_error(top.validation, len(loop.splits.validation), loop.positives)
    gap = None  # the linear model's ranking loss over the best's, and its standard error
    if (linear is not None and any(c is linear for c in usable) and best is not linear
            and cfg.objective.lead(top.validation, linear.validation) <= noise):
        gap = loss_gap(cfg, loop, linear, best)
    simplest = gap is not None and gap[0] <= gap[1]
    if simplest:
        best = linear
    if trees is not None:
        blend = options["their average"]
        summary["boosted_trees"] = {
            "validation": trees.validation, "trees": trees.design.hyperparameters["trees"],
            "target_encoded_categories": trees.design.hyperparameters["target_encoded_categories"],
            "average_with_network_validation": blend.validation, "chosen": best is trees or best is blend}
    if linear is not None:
        summary["linear_model"] = {"validation": linear.validation, **linear.design.hyperparameters,
                                   "chosen": best is linear}
        if gap is not None:
            summary["linear_model"].update(ranking_loss_gap=gap[0], ranking_loss_gap_standard_error=gap[1])
    summary["ranking_losses"] = {name: c.loss for name, c in options.items()}
    summary["validation_standard_error"] = noise
    print(f"redesign: on validation {cfg.goal.metric} (ranking loss): "
          + ", ".join(f"{name} {c.validation:.4f} ({c.loss:.4g})" for name, c in options.items())
          + (f"; one standard error of the best: {noise:.4f}" if noise else ""))
    if simplest:
        level = ("scored within a standard error of the best on validation, and its ranking loss was within a "
                 "standard error of the best's (paired row by row): the simplest model is kept")
    elif best is not top:
        level = "scored within a standard error of the best on validation, with the lowest ranking loss"
    elif any(c is not best and c.validation == best.validation for c in usable):
        level = "scored as high as the best on validation, with the lowest ranking loss"
    else:
        level = None
    if best is trees:
        summary.update(chosen="boosted_trees",
                       reason=f"gradient-boosted trees {level or 'beat the networks on validation'}")
    elif best is linear:
        summary.update(chosen="linear_model", reason=f"the linear model ({linear.design.hyperparameters['model']}) "
                                                     f"{level or 'beat the networks on validation'}")
    elif best is not chosen:
        summary.update(chosen="ensemble",
                       reason=f"the average of the network chosen so far ({summary['chosen']}) and gradient-boosted "
                              f"trees {level or 'beat the others on validation'}")
    return best


def loss_gap(cfg: PipelineConfig, loop: RedesignLoop, linear: Candidate, best: Candidate) -> tuple[float, float]:
    """(how much higher the linear model's ranking loss is than `best`'s on validation, the standard
    error of that gap), from their row-by-row differences."""
    rows = loop.splits.validation
    gap, error = paired_loss_gap(ranking_losses(linear.model, cfg.goal, rows), ranking_losses(best.model, cfg.goal, rows))
    print(f"redesign: the linear model scored within a standard error of the best on validation; its ranking loss "
          f"is {gap:+.4g} from the chosen {best.design.family} model's (one standard error of that gap: {error:.4g})")
    return gap, error


def chosen_params(design: Design, origin: str) -> dict:
    """The exported design's hyperparameters, and where it came from (the design stage logs the initial one's)."""
    params = {"origin": origin, "family": design.family}
    if design.is_ensemble:
        params["members"] = ", ".join(member.family for member in design.members)
        return params
    return {**params, **design.hyperparameters}


def _trained_run(paths: Paths, cfg: PipelineConfig, initial: Design, trained: dict, splits) -> Candidate:
    """The initial design as the train stage left it, as a candidate like the searched ones."""
    history = pd.read_csv(paths.train / "history.csv")
    model = load_model(paths.train / "model.keras")
    _, loss = score_and_loss(model, cfg.goal, splits.validation)
    return Candidate(0, initial, trained["validation"], {c: history[c].tolist() for c in history.columns
                                                          if c != "epoch"}, model, loss,
                     trained["restored_epoch"], trained["cut_short"],
                     train_score=train_score(model, cfg.goal, splits.train, cfg.search.seed),
                     phase_epochs=tuple(trained.get("phase_epochs", ())),
                     epoch_seconds=initial_epoch_seconds(trained))


def _search(cfg: PipelineConfig, loop: RedesignLoop, tracker: StageRun, out: Path, splits,
            trained_run: Candidate | None, trained: dict) -> tuple[Candidate, dict]:
    """Run the redesign loop from the trained design (None: it failed) and choose the best candidate."""
    goal = cfg.goal
    outcome = loop.run(prior=(trained_run,) if trained_run else (), reserve_s=refit_reserve(cfg, trained, splits),
                       budget_started=tracker.started)
    write_trials(outcome.trials, out / "trials.csv")
    save_history(outcome.history, out / "history.json")
    (out / "history.md").write_text(history_markdown(outcome.history, goal.metric, outcome.stop_reason))
    for entry in outcome.history:
        if entry.best_validation is not None:
            tracker.log_metrics({"round_best_validation": entry.best_validation}, step=entry.round)
    facts = {"searched": True, "tuner": cfg.search.tuner, "trials": len(outcome.trials),
             "rounds": len(outcome.history), "stop_reason": outcome.stop_reason, "search_seconds": outcome.seconds,
             "fidelity": outcome.fidelity, "diagnoses": sorted({d.kind for e in outcome.history for d in e.diagnoses})}
    print(f"redesign: search stopped ({outcome.stop_reason}) after {len(outcome.history)} round(s), "
          f"{len(outcome.trials)} trials, {outcome.seconds} s; rank correlation of subset and full-data scores: "
          f"{'-' if outcome.fidelity is None else f'{outcome.fidelity:.2f}'}")
    best = loop.best()
    if best is None:
        failed = sum(r.status == "FAILED" for e in outcome.history for r in e.full_runs)
        raise DesignError(f"redesign: no design learned anything usable: the trained initial design "
                          f"{'failed' if trained_run is None else 'was not better'}, and {failed} searched design(s) "
                          "diverged or did no better than always predicting the training prior (see the lines above); "
                          "check the data and targets, train longer (train.epochs, search.max_epochs) "
                          "or lower train.learning_rate")
    ensembles = [c for c in outcome.candidates if c.design.is_ensemble]
    if ensembles:
        facts["ensemble_validation"] = loop.best(ensembles).validation
    searched = best
    if trained_run is not None and best is not trained_run:
        best, facts["cross_validation"] = finalists_cross_validated(cfg, loop, trained_run, best, trained,
                                                                    tracker.started)
    save_confirmed([c for c in outcome.candidates if c is not best and c is not trained_run], out / "confirmed")
    if best is trained_run and searched is not trained_run:
        return best, {**facts, "chosen": "trained",
                      "reason": f"the search's {_described(searched)} led on validation, but not in "
                                f"{cfg.search.finalist_folds}-fold cross-validation on train + validation: "
                                "the trained initial design scored within a standard error of it there, with the "
                                "lower ranking loss, or better"}
    if best is trained_run:
        return best, {**facts, "chosen": "trained",
                      "reason": f"no searched design or ensemble beat the trained one ({outcome.stop_reason})"}
    confirmed = facts.get("cross_validation", {}).get("done")
    return best, {**facts, "chosen": "ensemble" if best.design.is_ensemble else "search",
                  "reason": f"search found a better design ({outcome.stop_reason}); "
                            "equal goal metrics are decided by the lower ranking loss (classes: calibrated log loss)"
                            + (f"; {cfg.search.finalist_folds}-fold cross-validation on train + validation "
                               "kept it over the trained initial design" if confirmed else "")}


def why_no_finalist_folds(cfg: PipelineConfig) -> str | None:
    """Why the finalists cannot be cross-validated (None: they can)."""
    if cfg.search.finalist_folds == 0:
        return "search.finalist_folds is 0"
    if not cfg.split.concrete(cfg.goal.kind, cfg.data.window is not None).exchangeable:
        return f"a {cfg.split.method} split keeps rows apart: shuffled folds would mix them"
    return None


def _described(run: Candidate) -> str:
    design = run.design
    return (f"ensemble ({'+'.join(m.family for m in design.members)})" if design.is_ensemble
            else f"{design.family} design")


def finalists_cross_validated(cfg: PipelineConfig, loop: RedesignLoop, trained_run: Candidate, searched: Candidate,
                              trained: dict, budget_started: float) -> tuple[Candidate, dict]:
    """The trained initial design or the search's choice, whichever `search.finalist_folds`-fold
    cross-validation on train + validation prefers (pipeline/search/finalists.py: within a standard
    error of the best fold mean, the lower ranking loss); the search's choice where it cannot run, or
    would not end within `search.time_budget_s` less one refit of the initial design. Returns (the
    choice, what the summary records)."""
    folds, splits, schema = cfg.search.finalist_folds, loop.splits, loop.schema
    cannot = why_no_finalist_folds(cfg)
    if cannot:
        return searched, {"done": False, "reason": cannot}
    rows = splits.train_and_validation()
    fitted = {}  # (design run, fold) -> model: an ensemble's members are fitted once, the trained design among them

    def fit(run: Candidate, fold: int, part) -> object:
        if run.members:
            parts = [fit(member, fold, part) for member in run.members]
            return None if any(p is None for p in parts) else ensemble_of(parts)
        if (id(run), fold) not in fitted:
            fitted[id(run), fold] = _refitted(cfg, schema, part, run, 1)
        return fitted[id(run), fold]

    # one fold's fits: each design's epochs on (k - 1)/k of train + validation, at its measured pace
    scale = len(rows) / len(splits.train) * (folds - 1) / folds
    initial_pace = initial_epoch_seconds(trained)  # stands in where a candidate saved by older code has none
    leaves = {id(leaf): leaf for run in (trained_run, searched) for leaf in _leaves(run)}.values()
    first_fold_s = scale * sum((leaf.epoch_seconds or initial_pace)
                               * (sum(leaf.phase_epochs) or max(1, leaf.restored_epoch)) for leaf in leaves)
    deadline = budget_started + cfg.search.time_budget_s - (refit_seconds(trained, splits) if cfg.train.refit else 0.0)
    result = cross_validate([trained_run, searched], fit, rows, cfg.goal, folds, cfg.search.seed, deadline,
                            first_fold_s)
    record = {"done": False, "folds": folds, "rows": len(rows), "seconds": result.seconds}
    if result.stopped:
        print(f"redesign: no cross-validation of the search's choice and the trained initial design: {result.stopped}")
        return searched, {**record, "reason": result.stopped}
    names = ("trained", "search")
    record["scores"] = {name: None if score is None else {"value": score.value, "ranking_loss": score.loss,
                                                          "folds": list(score.values), "seconds": score.seconds}
                        for name, score in zip(names, result.scores)}
    scored = [(run, name, score) for run, name, score in zip((trained_run, searched), names, result.scores)
              if score is not None]
    if not scored:
        return searched, {**record, "reason": "every fit's loss went non-finite"}
    kept, name, _ = cfg.objective.best_within_noise(scored, value=lambda s: s[2].value, loss=lambda s: s[2].loss,
                                                        rows=len(rows), positives=schema.task.positives(rows.y))

    def named(run: Candidate) -> str:
        return "the trained initial design" if run is trained_run else f"the search's {_described(run)}"

    print(f"redesign: {folds}-fold cross-validation on train + validation ({len(rows)} rows, {result.seconds:g} s): "
          + ", ".join(f"{named(run)} {cfg.goal.metric} "
                      + ("failed" if s is None else f"{s.value:.4f} (ranking loss {s.loss:.4g})")
                      for run, s in zip((trained_run, searched), result.scores))
          + f": keeps {named(kept)}")
    return kept, {**record, "done": True, "chosen": name}


@contextmanager
def parallel_trials(cfg: PipelineConfig, state: Path, tracker: StageRun, paths: Paths, devices):
    """`search.workers` local worker processes for the subset trials (one GPU each where this stage
    has GPUs), fed by the oracle this stage serves each round; stopped on exit."""
    nested = tracker.nested()
    spec = SearchSpec(new_run_id(), str(paths.root.resolve()), cfg.model_dump(mode="json"),
                      asdict(nested) if nested else None)
    gpus = [int(d.name.split(":")[1]) for d in devices if d.kind == "gpu"]
    with WorkerPool(state, cfg.search.workers, spec, cfg.search.oracle_host, gpus) as pool:
        yield pool


def save_confirmed(candidates: list[Candidate], folder: Path) -> None:
    """The search's other full-data designs and ensembles (not chosen), for the validate stage's
    leaderboard: each model and an index of names and validation scores."""
    folder.mkdir(parents=True, exist_ok=True)
    index = []
    for number, candidate in enumerate(candidates, start=1):
        design = candidate.design
        what = (f"ensemble ({'+'.join(m.family for m in design.members)})" if design.is_ensemble
                else f"full-data run ({design.family})")
        file = f"{number:02d}.keras"
        candidate.model.save(folder / file)
        index.append({"name": f"searched #{number}, not chosen: round {candidate.round} {what}", "file": file,
                      "validation": candidate.validation})
    write_json(folder / "index.json", index)


def initial_epoch_seconds(trained: dict) -> float:
    """What one epoch of the initial design's training run took (the train stage's result)."""
    return trained["seconds"] / max(1, trained["epochs_run"])


def refit_seconds(trained: dict, splits) -> float:
    """About what one refit takes: the initial design's training, on train + validation, up to the epoch it kept."""
    rows = len(splits.train) + len(splits.validation)
    return initial_epoch_seconds(trained) * rows / len(splits.train) * trained["restored_epoch"]


def refit_reserve(cfg: PipelineConfig, trained: dict, splits) -> float:
    """Seconds of `search.time_budget_s` a search leaves the refit (its copies of about what training
    the initial design took, on more rows), so that the search and the refit end within the budget
    together. The finalists' cross-validation gets no reserve of its own: it runs where the search
    leaves it the time (ending early), and takes the refit's share but one copy."""
    if not cfg.train.refit:
        return 0.0
    return min(cfg.search.time_budget_s, refit_copies(cfg, trained, splits) * refit_seconds(trained, splits))


REFIT_SHARE = 0.5  # of search.time_budget_s: what the refit's copies may take, whatever a search left them


def refit_copies(cfg: PipelineConfig, trained: dict, splits, seconds_left: float = 0.0,
                 share: float = REFIT_SHARE) -> int:
    """How many copies of a chosen single design the refit trains: `train.refit_copies`, or fewer
    (at least one) when they would take more than `share` of `search.time_budget_s` (the share a
    search leaves the refit) and more than `seconds_left` (what is left of it when the refit
    starts: nearly all of it where no search ran)."""
    seconds = max(share * cfg.search.time_budget_s, seconds_left)
    fitting = int(seconds / max(refit_seconds(trained, splits), 1e-3))
    return max(1, min(cfg.train.refit_copies, fitting))


def refit_in_budget(cfg: PipelineConfig, schema, splits, chosen: Candidate, trained: dict, budget_started: float,
                    cross_validated: bool = False):
    """`refit_chosen` with the copies that fit in what is left of `search.time_budget_s`, which began
    at `budget_started` (time.monotonic()), or in REFIT_SHARE of it; after the finalists' cross-validation
    (which took the refit's share) only in what is left, at least one copy."""
    seconds_left = cfg.search.time_budget_s - (time.monotonic() - budget_started)
    share = 0.0 if cross_validated else REFIT_SHARE
    return refit_chosen(cfg, schema, splits, chosen, refit_copies(cfg, trained, splits, seconds_left, share))


def refit_chosen(cfg: PipelineConfig, schema, splits, chosen: Candidate, copies: int = 1):
    """The chosen design trained afresh on train + validation for the epochs its run kept: `copies`
    copies of a network with seeds train.seed, train.seed + 1, ... averaged (a searched ensemble:
    each member once); boosted trees refitted with as many trees; the linear model refitted, its
    regularisation chosen again by cross-validation on those rows. Returns (model, what was done);
    the selected model if a refit fails."""
    rows = splits.train_and_validation()
    started = time.monotonic()
    singles = _leaves(chosen)
    networks = [r for r in singles if r.design.family not in PLAIN_FAMILIES]
    copies = copies if len(networks) == 1 else min(1, len(networks))  # (trees or linear alone: no network copies)
    plain = {}  # the refitted linear model's hyperparameters, when there is one
    model = _refitted(cfg, schema, rows, chosen, copies, plain)
    if model is None:
        return chosen.model, {"done": False, "reason": "the loss went non-finite refitting "
                                                       f"{'+'.join(r.design.family for r in networks)}; "
                                                       "the selected model is kept"}
    averaged = f"the average of {copies} copies (seeds {cfg.train.seed}..{cfg.train.seed + copies - 1})" \
        if networks and copies > 1 else None
    if len(networks) == 1 and copies < cfg.train.refit_copies:
        print(f"redesign: refit {copies} of train.refit_copies={cfg.train.refit_copies} copies: more would not fit in "
              f"what is left of search.time_budget_s ({cfg.search.time_budget_s:g} s), or in {REFIT_SHARE:.0%} of "
              "it after a search not followed by a cross-validation")
    return model, {"done": True, "rows": len(rows), "epochs": [sum(r.phase_epochs) or max(1, r.restored_epoch)
                                                               for r in networks],
                   "trees": next((r.design.hyperparameters["trees"] for r in singles
                                  if r.design.family == tree_models.FAMILY), None),
                   "linear_model": plain.get(linear_models.FAMILY),
                   "copies": copies, "averaged": averaged, "seconds": round(time.monotonic() - started, 2),
                   "note": "trained on train + validation: its validation score is the selected model's, before "
                           "the refit; the test split judges the refitted model"}


def _leaves(run: Candidate) -> list[Candidate]:
    """The single designs in a candidate (an ensemble's members, an average's parts), in order."""
    return [leaf for member in run.members for leaf in _leaves(member)] if run.members else [run]


def _refitted(cfg: PipelineConfig, schema, rows, run: Candidate, copies: int, plain: dict | None = None):
    """`run`'s design trained afresh on `rows` (an ensemble: member by member); None if a loss went
    non-finite. A refitted linear model's hyperparameters go into `plain` (under its family)."""
    if run.members:
        parts = [_refitted(cfg, schema, rows, member, copies, plain) for member in run.members]
        return None if any(p is None for p in parts) else ensemble_of(parts)
    if run.design.family == tree_models.FAMILY:
        return tree_models.fit_trees(schema, tree_rows(rows, schema, cfg.search.seed), cfg.search.seed,
                                     trees=run.design.hyperparameters["trees"],
                                     encode=run.design.hyperparameters["target_encoded_categories"] > 0).model
    if run.design.family == linear_models.FAMILY:
        fitted = linear_models.fit_linear(schema, rows, cfg.search.seed)
        if plain is not None:
            plain[linear_models.FAMILY] = fitted.design.hyperparameters
        return fitted.model
    epochs = max(1, run.restored_epoch or len(run.curves.get("loss", [])))
    models = []
    for copy in range(copies):
        train = cfg.train.model_copy(update={"seed": cfg.train.seed + copy})
        model = refit(run.design, schema, rows, train, run.phase_epochs or (epochs,), verbose=0)
        if model is None:
            return None
        models.append(model)
    return models[0] if len(models) == 1 else ensemble_of(models)


def search_state(cfg: PipelineConfig, paths: Paths) -> Path:
    """The search's persistent folder: kept when it holds this very search (resume), else emptied.

    The fingerprint covers every setting that shapes the trials and the data they see; the time
    budget and the goal's threshold are left out (they only decide when to stop), so a search that
    ran out of time can go on with a larger budget, or against another threshold.
    """
    settings = cfg.model_dump(mode="json", exclude={"tracking": True, "train": {"verbose"},
                                                    "goal": {"threshold", "fail_on_miss"},
                                                    "search": {"time_budget_s", "resume", "workers",
                                                               "oracle_host"}})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name in (paths.split / "indices.npz", paths.prepared / "data.npz", paths.design / "design.json"):
        digest.update(Path(name).read_bytes())
    fingerprint = {"fingerprint": digest.hexdigest()}
    state, marker = paths.search_state, paths.search_state / "fingerprint.json"
    if state.exists() and not (cfg.search.resume and marker.is_file() and read_json(marker) == fingerprint):
        shutil.rmtree(state)
    elif (state / "round_1").exists():
        print(f"redesign: resuming the search saved in {state}")
    write_json(marker, fingerprint)
    return state
