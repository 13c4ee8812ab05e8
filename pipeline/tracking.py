"""MLflow tracking: one parent run per pipeline run, shared by the stages' processes.

DVC runs each stage in its own process, so the parent run is found again by a tag: the hash
of the validated config, with `pipeline_state = open` until the last stage closes it. A repro
with the same config after a finished one starts a new parent run; one that stopped half-way
continues its open run. The initial training, every search trial and every full-data run log
their epoch metrics as each epoch ends, under the same names (Keras' own: `loss`, `val_loss`,
`val_goal`, ...) and steps (the epoch, from 1), so they chart together; trials and full-data
runs are nested runs under the parent. Every run is tagged with the git commit and the DVC
experiment, and samples system metrics (CPU, memory; GPU where MLflow can read it).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import PipelineConfig

STATE_TAG = "pipeline_state"
HASH_TAG = "pipeline_config_hash"
SYSTEM_METRICS_INTERVAL_S = 5.0


def repo_root() -> Path:
    """The repo root; under `dvc exp run --temp/--queue` DVC_ROOT points at the real one."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri(cfg: PipelineConfig) -> str:
    """MLFLOW_TRACKING_URI, else tracking.uri, else sqlite:///<repo root>/mlflow.db."""
    from pipeline.config import ConfigError, TrackingConfig

    from_env = os.environ.get("MLFLOW_TRACKING_URI")
    if from_env and from_env.split(":", 1)[0].split("+", 1)[0] not in TrackingConfig.URI_SCHEMES:
        raise ConfigError(f"MLFLOW_TRACKING_URI: got {from_env!r}; an MLflow tracking URI "
                          f"({', '.join(TrackingConfig.URI_SCHEMES)})")
    return from_env or cfg.tracking.uri or f"sqlite:///{repo_root() / 'mlflow.db'}"


def config_hash(cfg: PipelineConfig) -> str:
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


class StageRun:
    """What a stage may log into the pipeline's parent run (no-ops when tracking is off)."""

    def __init__(self, mlflow_module, stage: str, started: float | None = None):
        self.mlflow = mlflow_module
        self.stage = stage
        # when the stage began (time.monotonic()): its time budgets count from here, start-up included
        self.started = time.monotonic() if started is None else started

    @property
    def enabled(self) -> bool:
        return self.mlflow is not None

    @property
    def run_id(self) -> str | None:
        return self.mlflow.active_run().info.run_id if self.enabled else None

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        if self.enabled:
            finite = {f"{self.stage}.{k}": float(v) for k, v in values.items() if _finite(v)}
            self.mlflow.log_metrics(finite, step=step)

    def log_params(self, values: dict) -> None:
        if self.enabled:
            self.mlflow.log_params(flatten(values, f"{self.stage}."))

    def set_tags(self, tags: dict) -> None:
        if self.enabled:
            self.mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled and Path(path).exists():
            if Path(path).is_dir():
                self.mlflow.log_artifacts(str(path), artifact_path or self.stage)
            else:
                self.mlflow.log_artifact(str(path), artifact_path or self.stage)

    def log_input(self, dataset, context: str) -> None:
        """An `mlflow.data` dataset (source, digest, rows, schema) as an input of the run."""
        if not self.enabled:
            return
        try:
            self.mlflow.log_input(dataset, context=context)
        except self.mlflow.exceptions.MlflowException:
            # On a shared server, another pipeline may be inserting the same dataset (same digest) at
            # this moment and win the unique key; once it has, logging again reuses its row.
            time.sleep(1.0)
            self.mlflow.log_input(dataset, context=context)

    def close_pipeline(self, status_tag: str) -> None:
        """Mark the pipeline run finished: the next run with this config starts a new one."""
        self.set_tags({STATE_TAG: "closed", "pipeline_end": status_tag})

    def log_epoch(self, step: int, logs: dict) -> None:
        """One epoch's metrics under Keras' names, as the epoch ends (step: the epoch, from 1)."""
        if self.enabled:
            self.mlflow.log_metrics({k: float(v) for k, v in logs.items() if _finite(v)}, step=step)

    def nested(self) -> NestedRuns | None:
        """Where nested runs under this run go, for this process or another (None when tracking is off)."""
        if not self.enabled:
            return None
        parent = self.mlflow.active_run()
        return NestedRuns(self.mlflow.get_tracking_uri(), parent.info.experiment_id, parent.info.run_id)

    def start_child(self, run_name: str, tags: dict) -> LiveRun | None:
        """A nested run that is written while it trains (None when tracking is off)."""
        nested = self.nested()
        return None if nested is None else nested.start_child(run_name, tags)


@dataclass(frozen=True)
class NestedRuns:
    """Nested runs under a pipeline run, from any process that can reach its store (a search worker too)."""

    uri: str
    experiment_id: str
    parent_run_id: str

    def start_child(self, run_name: str, tags: dict) -> LiveRun:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        run = client.create_run(self.experiment_id, run_name=run_name,
                                tags={"mlflow.parentRunId": self.parent_run_id, **run_tags(),
                                      **{k: str(v)[:5000] for k, v in tags.items()}})
        return LiveRun(client, run.info.run_id)


class LiveRun:
    """A nested run written as it goes: each epoch's metrics when the epoch ends, then the run's
    parameters, tags and final values when it finishes."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def log_epoch(self, step: int, logs: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in logs.items() if _finite(v)])

    def finish(self, params: dict, tags: dict, values: dict[str, float], status: str = "FINISHED") -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items() if _finite(v)],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])
        self.client.set_terminated(self.run_id, status)


@functools.cache
def git_commit() -> str | None:
    """The commit the code ran from: DVC's experiment baseline, else the repo's HEAD (asked once
    per process: every stage and nested run is tagged with it)."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def run_tags() -> dict[str, str]:
    """What joins an MLflow run to the code and the DVC experiment that made it."""
    tags = {}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
    return tags


# The MLflow UI reads this experiment tag to open an experiment on its training runs ("Machine
# learning") rather than its GenAI overview (traces); an experiment that has the tag keeps it.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def _experiment_id(mlflow, cfg: PipelineConfig) -> str:
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is not None:
        if not any(key in experiment.tags for key in EXPERIMENT_KIND):
            for key, value in EXPERIMENT_KIND.items():
                mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    # Explicit artifact root beside the sqlite store: a relative default would land in a DVC temp copy.
    uri = tracking_uri(cfg)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    try:
        return mlflow.create_experiment(cfg.tracking.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException:
        # On a shared tracking server (no local lock) another process may have just created it.
        experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextmanager
def store_lock(uri: str):
    """One process at a time, for what must not interleave in a local sqlite store: creating its
    tables (MLflow's migrations race), the experiment and a pipeline's parent run, and moving a
    registry alias. Other stores (a tracking server) handle their own concurrency."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def stage_run(cfg: PipelineConfig, stage: str, started: float | None = None):
    """Open (or reopen) the pipeline's parent run for one stage; yields a StageRun."""
    if not cfg.tracking.enabled:
        yield StageRun(None, stage, started)
        return
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    if cfg.tracking.system_metrics:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
        mlflow.set_system_metrics_samples_before_logging(1)
    key = config_hash(cfg)
    with store_lock(uri):
        experiment_id = _experiment_id(mlflow, cfg)
        existing = mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.{HASH_TAG} = '{key}' and tags.{STATE_TAG} = 'open'",
            order_by=["attributes.start_time DESC"], max_results=1, output_format="list",
        )
        if existing:
            run = mlflow.start_run(run_id=existing[0].info.run_id, log_system_metrics=cfg.tracking.system_metrics)
        else:
            run = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"{cfg.data.source}-{cfg.goal.metric}-{key[:6]}",
                tags={HASH_TAG: key, STATE_TAG: "open", "data": cfg.data.source, "task": cfg.goal.task},
                log_system_metrics=cfg.tracking.system_metrics,
            )
            mlflow.log_params(flatten(cfg.model_dump(mode="json")))
    try:
        with run:
            mlflow.set_tags({f"stage.{stage}": "running", **run_tags()})
            yield StageRun(mlflow, stage, started)
            mlflow.set_tag(f"stage.{stage}", "done")
    finally:
        while mlflow.active_run():
            mlflow.end_run()
