"""Stage 9, report: `reports/index.html`, one self-contained page about the run, logged to MLflow.

Goal and verdict first; then the data, the chosen architecture, the redesign history, the test
metrics, the error analysis and the deployment. Built only from the other stages' files.
"""

from __future__ import annotations

import datetime
import json

import pandas as pd
import yaml

from pipeline import registry
from pipeline.config import PipelineConfig
from pipeline.designs import Design
from pipeline.files import read_json, replaced_dir, write_json
from pipeline.models import linear as linear_models
from pipeline.objective import Objective
from pipeline.paths import Paths
from pipeline.report import Section, code, image, pairs, paragraph, render, table, text, verdict_header
from pipeline.schema import Schema
from pipeline.search.records import load_history
from pipeline.tracking import StageRun, config_hash, git_commit, tracking_uri

TRIALS_SHOWN, WORST_SHOWN = 15, 10


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    test = read_json(paths.metrics / "test.json")
    manifest = read_json(paths.export / "manifest.json")
    schema = Schema.from_json(paths.split / "schema.json")
    with replaced_dir(paths.reports) as out:
        sections = [
            leaderboard_section(cfg, paths, test),
            data_section(paths, schema),
            architecture_section(paths),
            redesign_section(paths, cfg.goal.metric),
            metrics_section(test),
            error_section(paths, test),
            deployment_section(manifest, cfg, tracker),
        ]
        title = f"{cfg.data.source}: {cfg.goal.task}, {cfg.goal.metric} goal - run report"
        footer = (f"Generated {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; model exported "
                  f"with Keras {text(manifest['keras_version'])} ({text(manifest['backend'])} backend).")
        page = render(title, verdict_header(test, cfg.data.source, cfg.goal.task), sections, footer)
        (out / "index.html").write_text(page, encoding="utf-8")
    report, pictures = paths.reports / "index.html", page.count("<img ")
    write_json(paths.metrics / "summary.json", experiment_summary(cfg, paths, test, tracker))
    tracker.log_artifact(paths.reports, "report")
    tracker.close_pipeline("goal met" if test["goal_met"] else "goal missed")
    print(f"report: {report} ({len(page) // 1024} KiB, {pictures} pictures embedded)")
    return {"path": str(report), "bytes": len(page), "pictures": pictures}


def experiment_summary(cfg: PipelineConfig, paths: Paths, test: dict, tracker: StageRun) -> dict:
    """The one small metrics file `dvc exp show` lists per experiment, the goal metric first."""
    chosen = read_json(paths.redesign / "summary.json")
    interval = test.get("interval_95") or {}
    summary = {
        cfg.goal.metric: test["value"],
        "goal_met": test["goal_met"],
        "interval_low": interval.get("low"),
        "interval_high": interval.get("high"),
        "chosen": chosen["design"],
        "params": sum(layer["params"] for layer in read_json(paths.redesign / "layers.json")),
        "trials": chosen["trials"],
        "training_seconds": round(test["training_seconds"], 1),
    }
    if tracker.enabled:
        summary["mlflow_run"] = tracker.run_id
    return summary


def leaderboard_section(cfg: PipelineConfig, paths: Paths, test: dict) -> Section:
    """Is the network worth it: every model beside the plain baselines, and what this run was."""
    train = read_json(paths.metrics / "train.json")
    section = Section("leaderboard", "Leaderboard").add(
        paragraph("Best test score first. Baselines are fitted on the training rows only; the exported model "
                  "may be refitted on train + validation (its validation score is then the selected model's)."),
        table(test.get("leaderboard", []), ["name", "kind", "validation", "test", "fit_seconds",
                                            "predict_ms_per_row", "size_kb", "note"]))
    facts = {"initial training": f"{train['seconds']} s, {train['epochs_run']} epochs, weights of epoch "
                                 f"{train['restored_epoch']} kept" + (" (cut short by train.time_budget_s)"
                                                                      if train.get("cut_short") else ""),
             "git commit": git_commit() or "unknown", "config hash": config_hash(cfg)}
    section.add("<h3>This run</h3>", pairs(facts),
                "<details><summary>the validated config</summary>"
                + f"<pre>{text(yaml.safe_dump(cfg.model_dump(mode='json'), sort_keys=False))}</pre></details>")
    return section


def data_section(paths: Paths, schema: Schema) -> Section:
    split = read_json(paths.split / "summary.json")
    facts = {"source": schema.source, "task": schema.task.name, "input": schema.input_kind,
             "model input shape": "x".join(map(str, schema.input_shape)), "rows": schema.n_rows,
             "feature columns": len(schema.features)}
    if schema.classes:
        facts["labels" if schema.task.multi_target else "classes"] = ", ".join(schema.classes)
    facts["split"] = f"{split['method']} (seed {split['seed']})"
    section = Section("data", "Data").add(pairs(facts), "<h3>Split</h3>", table([split["rows"]]))
    duplicates = split.get("duplicates_of_train_rows") or {}
    if any(duplicates.values()):
        section.add(paragraph(f"Warning: rows that exactly duplicate a training row: {duplicates}"))
    counts = split.get("class_counts")
    if counts:
        section.add("<h3>Class balance</h3>",
                    table(pd.DataFrame(counts).rename_axis("class").reset_index()))
    if schema.columns:
        section.add("<h3>Columns</h3>", table([
            {"column": c.name, "kind": c.kind, "missing": c.missing, "vocabulary": len(c.vocabulary or []) or None}
            for c in schema.columns]))
    return section


def architecture_section(paths: Paths) -> Section:
    design = Design.load(paths.redesign / "design.json")
    rows = read_json(paths.redesign / "layers.json")
    section = Section("architecture", "Chosen architecture").add(
        paragraph(f"{design.family}: {sum(r['params'] for r in rows):,} parameters, {len(rows)} layers."))
    if design.members:
        section.add(paragraph(f"An average of {len(design.members)} designs: "
                              + "; ".join(m.family for m in design.members)))
    if design.hyperparameters:
        section.add("<h3>Hyperparameters</h3>", pairs(design.hyperparameters))
    section.add("<h3>Layers</h3>", table(rows))
    if not design.hyperparameters.get("augment"):
        return section
    return section.add(image(paths.design / "augmentation_samples.png",
                             "training augmentation: each row an image and random variants"))


def redesign_section(paths: Paths, metric: str) -> Section:
    summary = read_json(paths.redesign / "summary.json")
    section = Section("redesign", "Redesign history").add(paragraph(
        f"Kept the {summary['chosen']} model: {summary['reason']}. Trained initial design: validation "
        f"{metric} {summary['trained_validation']:.4f}; chosen: {summary['validation']:.4f}."))
    trees = summary.get("boosted_trees")
    if trees:
        section.add(paragraph(
            f"Gradient-boosted trees ({trees['trees']} per output"
            f"{', categories target-encoded' if trees.get('target_encoded_categories') else ''}, converted into "
            f"Keras layers): validation {metric} "
            f"{trees['validation']:.4f}; their average with the network: {trees['average_with_network_validation']:.4f}"
            f"; {'chosen' if trees['chosen'] else 'not chosen'}."))
    linear = summary.get("linear_model")
    if linear:
        section.add(paragraph(
            f"Linear model ({linear_models.describe(linear)}, converted "
            f"into Keras layers): validation {metric} {linear['validation']:.4f}; "
            + (f"level with the best on it, its ranking loss {linear['ranking_loss_gap']:+.4g} from the best's "
               f"(one standard error of the row-by-row differences: {linear['ranking_loss_gap_standard_error']:.4g}); "
               if "ranking_loss_gap" in linear else "")
            + f"{'chosen' if linear['chosen'] else 'not chosen'}."))
    checked = summary.get("cross_validation") or {}
    if checked.get("done"):
        who = {"trained": "the trained initial design", "search": "the search's choice"}
        section.add(paragraph(
            f"Finalists cross-validated ({checked['folds']} folds of train + validation, {checked['rows']:,} rows, "
            f"{checked['seconds']:.0f} s): "
            + "; ".join(f"{who[name]} " + ("failed" if score is None else f"{metric} {score['value']:.4f}, "
                                                                           f"ranking loss {score['ranking_loss']:.4g}")
                        for name, score in checked["scores"].items())
            + f"; kept {who[checked['chosen']]}."))
    elif checked:
        section.add(paragraph(f"Finalists not cross-validated: {checked['reason']}.", "note"))
    refit = summary.get("refit") or {}
    if refit.get("done"):
        how = ([f"the network for the epochs its run kept ({', '.join(map(str, refit['epochs']))})"
                + (f", {refit['averaged']}" if refit.get("averaged") else "")] if refit["epochs"] else [])
        how += [f"the boosted trees with the same {refit['trees']} trees per output"] if refit.get("trees") else []
        how += [f"the linear model ({linear_models.describe(refit['linear_model'])} on these rows)"] \
            if refit.get("linear_model") else []
        section.add(paragraph(
            f"Refitted: once chosen, the design was trained again on the training and validation rows "
            f"({refit['rows']:,} rows): {' and '.join(how)}, in "
            f"{refit['seconds']:.0f} s. The exported model is the refitted one; the validation score above is "
            "the selected model's, before the refit, and the test split judges the refitted model."))
    elif refit:
        section.add(paragraph(f"Not refitted: {refit['reason']}.", "note"))
    if summary.get("searched"):
        section.add(pairs({k: summary[k] for k in ("tuner", "rounds", "trials", "stop_reason", "search_seconds",
                                                    "fidelity") if k in summary}))
    history_file = paths.redesign / "history.json"
    if history_file.is_file():
        section.add("<h3>Rounds</h3>", table([
            {"round": h.round, "data share": h.data_fraction, "trials": h.trials, "failed": h.failed,
             f"best validation {metric}": h.best_validation, "ensemble": h.ensemble_validation,
             "fidelity (rank correlation)": h.fidelity,
             "diagnoses": "; ".join(f"{d.kind}: {d.evidence}" for d in h.diagnoses) or "healthy",
             "next round": "; ".join(h.changes) or "-"}
            for h in load_history(history_file)]))
    trials_file = paths.redesign / "trials.csv"
    trials = pd.read_csv(trials_file) if trials_file.is_file() else pd.DataFrame()
    if len(trials):
        trials = trials.iloc[Objective(metric).order(trials["score"].tolist())]
        hidden = [c for c in trials.columns if c.startswith("tuner/") or c in ("message", "resumed")]
        section.add(f"<h3>Trials (best {min(TRIALS_SHOWN, len(trials))} of {len(trials)}, on the search subset)</h3>",
                    table(trials.drop(columns=hidden), limit=TRIALS_SHOWN))
    if len(pd.read_csv(paths.redesign / "curves.csv")):  # (a chosen linear model has none)
        return section.add(image(paths.redesign / "curves.png", summary["curves"]))
    return section.add(paragraph(summary["curves"].capitalize() + ".", "note"))


def metrics_section(test: dict) -> Section:
    overall = {k: v for k, v in test["all"].items() if isinstance(v, (int, float))}
    section = Section("metrics", "Test metrics").add(
        paragraph(f"On {test['test_rows']} held-out test rows, never seen in training or model selection."),
        pairs(overall))
    if "per_class" in test["all"]:
        section.add("<h3>Per class</h3>", table([{"class": name, **values}
                                                   for name, values in test["all"]["per_class"].items()]))
    if "residuals" in test["all"]:
        section.add("<h3>Residuals (predicted - true)</h3>", pairs(test["all"]["residuals"]))
    return section


def error_section(paths: Paths, test: dict) -> Section:
    folder, analysis = paths.validate, test.get("analysis", {})
    section = Section("errors", "Error analysis")
    for name, caption in (("confusion.png", "confusion matrix (counts)"),
                          ("confusion_normalised.png", "confusion matrix (share of each true class)"),
                          ("residuals.png", "predicted against true, and the residuals"),
                          ("roc_pr.png", "ROC and precision-recall curves"),
                          ("reliability.png", "calibration: confidence against accuracy"),
                          ("worst_examples.png", "the worst test examples: true -> predicted (confidence)")):
        section.add(image(folder / name, caption))
    calibration = analysis.get("calibration")
    if calibration:
        section.add(paragraph(f"Expected calibration error: {calibration['expected_calibration_error']:.4f}."))
    if analysis.get("confused_pairs"):
        section.add("<h3>Most confused classes</h3>", table(analysis["confused_pairs"]))
    if analysis.get("weakest_slices"):
        section.add("<h3>Weakest slices</h3>", table(analysis["weakest_slices"]))
    worst = folder / "worst_examples.csv"
    if worst.is_file():
        section.add("<h3>Worst test examples</h3>", table(pd.read_csv(worst), limit=WORST_SHOWN))
    return section


def deployment_section(manifest: dict, cfg: PipelineConfig, tracker: StageRun) -> Section:
    section = Section("deployment", "Deployment").add(pairs({
        "Keras model (preprocessing inside)": manifest["model"], "schema": manifest["schema"],
        "TensorFlow SavedModel": manifest["saved_model"]}))
    section.add("<p>Predict on raw rows or files: " + code(manifest["predict"]) + "</p>")
    registered = manifest.get("registered")
    if isinstance(registered, dict):
        section.add(paragraph(f"Registered in MLflow as {registered['uri']}, "
                              f"{registry.registration_state(registered)}."))
        if registered["serve"]:
            section.add("<p>Serve the champion: " + code(registered["serve"]) + "</p>")
    else:
        section.add(paragraph(str(registered), "note"))
    if tracker.enabled:
        section.add(paragraph(f"MLflow run {tracker.run_id} in experiment '{cfg.tracking.experiment}' "
                              f"({tracking_uri(cfg)}); compare runs with `mlflow ui --backend-store-uri "
                              f"{tracking_uri(cfg)}`.", "note"))
    return section.add("<details><summary>manifest.json</summary><pre>"
                       + text(json.dumps(manifest, indent=2)) + "</pre></details>")

