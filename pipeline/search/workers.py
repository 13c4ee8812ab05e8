"""Parallel trials with KerasTuner's distributed tuning: the redesign stage is the chief, workers run trials.

For each round of a search with `search.workers: N` (N >= 2) the redesign stage holds the
round's oracle and serves it over gRPC (KerasTuner's chief, chosen by its environment variables
`KERASTUNER_TUNER_ID=chief`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`). Workers ask it
for trials, train them on the round's subset and report each epoch back; the oracle's budget
(goal, clock, trials) ends the round for all of them, and the chief records every trial with the
worker that ran it. The stage starts N local workers (`WorkerPool`), each pinned to one GPU or a
share of the CPU cores, restarts one that dies (it takes its unfinished trial up again) and stops
them when the search ends; each exits if the stage dies.

A worker needs what its trials are built from: the search settings and the tracking run
(`search.json`, once per search) and each round's space, starting design, epochs and deadline
(`round_N/round.json`). Both are written into the search's state folder, which every worker must
see, as KerasTuner's workers must see its trial folders. A worker on another machine runs
`automl search-worker --state <that folder, shared> --oracle-host <the chief's address>` in a
checkout of the same code and data (README).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.errors import DesignError
from pipeline.files import read_json, write_json

SEARCH_FILE = "search.json"
ROUND_FILE = "round.json"
ENDED_FILE = "ended.json"
DONE_FILE = "workers_done.json"
KT_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
MAX_RESTARTS = 3  # per local worker, over one search
POLL_S = 0.5
# Several processes share a GPU (the stage and its workers): each takes memory as it needs it,
# rather than TensorFlow's all of it or JAX's 75% up front (both libraries' documented settings).
SHARED_GPU_ENV = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


@dataclass(frozen=True)
class SearchSpec:
    """What every worker of one search run needs, written once as the search starts."""

    run: str  # this search run's id: a worker serves the rounds that carry it
    root: str  # the chief's repo root (local workers run there; others use their own checkout)
    config: dict  # the validated config, as JSON
    tracking: dict | None  # NestedRuns fields: where trial runs go (None: tracking off)


@dataclass(frozen=True)
class RoundSpec:
    """One round's trials, as the chief's loop defines them (see RedesignLoop.search_subset)."""

    run: str
    round: int
    port: int
    space: dict  # DesignSpace.to_dict()
    defaults: dict  # the round's starting design
    trial_epochs: int
    n_train: int  # rows in the subset
    clipnorm: float | None
    fraction: float  # share of the training rows the subset holds
    deadline_unix: float  # the search's deadline, as wall-clock time (workers' clocks must agree)
    max_trials: int
    seed: int


def atomic_write(path: Path, data: dict) -> None:
    """Write JSON so that a reader on another process never sees half a file."""
    part = path.with_name(path.name + f".{os.getpid()}.part")
    write_json(part, data)
    os.replace(part, path)


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def connect_host(bind_host: str) -> str:
    """Where a local worker reaches a chief bound to `bind_host`."""
    return "127.0.0.1" if bind_host in ("0.0.0.0", "", "::") else bind_host


class _DropConditionPrints:
    """stdout, less what KerasTuner 1.4's `Parent.to_proto` prints (a leftover debug print of a
    condition's first value, e.g. "mlp", on every gRPC message that carries the space)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("keras_tuner") and caller.endswith(".conditions"):
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def kerastuner_env(tuner_id: str, host: str, port: int) -> dict[str, str]:
    """KerasTuner's distributed-mode variables: who this tuner is, where the chief's oracle is."""
    return dict(zip(KT_ENV, (tuner_id, host, str(port))))


@contextmanager
def kerastuner_role(tuner_id: str, host: str, port: int):
    """The chief's KerasTuner distributed-mode environment for the tuners built inside (then the old one back)."""
    saved = {key: os.environ.get(key) for key in KT_ENV}
    os.environ.update(kerastuner_env(tuner_id, host, port))
    stdout, sys.stdout = sys.stdout, _DropConditionPrints(sys.stdout)
    try:
        yield
    finally:
        sys.stdout = stdout
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_shares(count: int, cores: list[int]) -> list[list[int]]:
    """`count` nearly equal, disjoint shares of the cores (one core each, shared round-robin, when
    there are more workers than cores)."""
    if count >= len(cores):
        return [[cores[k % len(cores)]] for k in range(count)]
    size, extra = divmod(len(cores), count)
    shares, at = [], 0
    for k in range(count):
        take = size + (k < extra)
        shares.append(cores[at:at + take])
        at += take
    return shares


class WorkerPool:
    """The chief's side: starts and supervises `count` local workers, and serves each round's oracle."""

    def __init__(self, state: Path, count: int, spec: SearchSpec, bind_host: str = "127.0.0.1",
                 gpus: list[int] | None = None, log=print):
        self.state, self.count, self.spec, self.bind_host = state, count, spec, bind_host
        self.gpus, self.log = gpus or [], log
        self.processes: dict[str, subprocess.Popen] = {}
        self.places: dict[str, tuple[list[int], int | None]] = {}  # each worker's CPU cores and GPU
        self.restarts: dict[str, int] = {}
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    def __enter__(self) -> WorkerPool:
        (self.state / DONE_FILE).unlink(missing_ok=True)
        atomic_write(self.state / SEARCH_FILE, asdict(self.spec))
        shares = cpu_shares(self.count, usable_cores())
        for k in range(self.count):
            worker_id = f"worker{k}"
            self.restarts[worker_id] = 0
            self.places[worker_id] = (shares[k], self.gpus[k % len(self.gpus)] if self.gpus else None)
            self.processes[worker_id] = self._start(worker_id, *self.places[worker_id])
        where = (f"one GPU each ({', '.join(map(str, self.gpus))})" if self.gpus
                 else "CPU cores " + " | ".join(",".join(map(str, s)) for s in shares))
        self.log(f"redesign: {self.count} search workers started ({where}); the oracle is served on "
                 f"{self.bind_host}")
        self._supervisor = threading.Thread(target=self._supervise, name="search-workers", daemon=True)
        self._supervisor.start()
        return self

    def _start(self, worker_id: str, cores: list[int], gpu: int | None) -> subprocess.Popen:
        env = {**SHARED_GPU_ENV, **{k: v for k, v in os.environ.items() if k not in KT_ENV}}
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        command = [sys.executable, "-m", "pipeline", "search-worker", "--state", str(self.state.resolve()),
                   "--id", worker_id, "--run", self.spec.run, "--parent", str(os.getpid()),
                   "--oracle-host", connect_host(self.bind_host), "--cores", ",".join(map(str, cores))]
        return subprocess.Popen(command, cwd=self.spec.root, env=env)

    def _supervise(self) -> None:
        """A worker that died (killed, crashed) is started again under its id: the oracle gives it
        back the trial it had not finished."""
        while not self._stop.wait(POLL_S):
            for worker_id, process in list(self.processes.items()):
                code = process.poll()
                if code is None or self._stop.is_set():
                    continue
                if self.restarts[worker_id] >= MAX_RESTARTS:
                    continue
                self.restarts[worker_id] += 1
                self.log(f"redesign: search {worker_id} exited with code {code}; starting it again "
                         f"({self.restarts[worker_id]}/{MAX_RESTARTS})")
                self.processes[worker_id] = self._start(worker_id, *self.places[worker_id])

    def lost(self) -> list[str]:
        """Workers that died once more after their last restart: a trial they held will never end."""
        return [w for w, p in self.processes.items() if p.poll() is not None and self.restarts[w] >= MAX_RESTARTS]

    def serve(self, search) -> None:
        """Run the chief's `search()`, which returns once the workers are done with the round; fail
        (rather than wait for ever) if a worker is lost."""
        failed: list[BaseException] = []

        def target():
            try:
                search()
            except BaseException as exc:  # noqa: BLE001  (raised again below, in the stage's thread)
                failed.append(exc)

        chief = threading.Thread(target=target, name="oracle-chief", daemon=True)
        chief.start()
        while chief.is_alive():
            chief.join(POLL_S)
            lost = self.lost() if chief.is_alive() else []
            if lost:
                raise DesignError(f"redesign: search {', '.join(lost)} kept dying ({MAX_RESTARTS} restarts; the "
                                  "output is above); set search.workers=1 to run the trials in this process")
        if failed:
            raise failed[0]

    @contextmanager
    def round(self, spec: RoundSpec):
        """Serve one round: publish it to the workers, and make this process KerasTuner's chief
        while the round's tuner is built and searches."""
        folder = self.state / f"round_{spec.round}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ENDED_FILE).unlink(missing_ok=True)
        atomic_write(folder / ROUND_FILE, asdict(spec))
        try:
            with kerastuner_role("chief", self.bind_host, spec.port):
                yield
        finally:
            atomic_write(folder / ENDED_FILE, {"run": spec.run, "port": spec.port})

    def __exit__(self, *exc) -> None:
        self._stop.set()
        atomic_write(self.state / DONE_FILE, {"run": self.spec.run})
        ends = time.monotonic() + 30
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, ends - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def share_gpu_memory() -> None:
    """Call before the backend starts, in a process that will share its GPUs (a user's value wins)."""
    for key, value in SHARED_GPU_ENV.items():
        os.environ.setdefault(key, value)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# ---- the worker's side -------------------------------------------------------------------------


def open_round(state: Path, run: str, done: set) -> RoundSpec | None:
    """The round of this search run that is being served and this worker has not worked on yet."""
    for folder in sorted(state.glob("round_*"), key=lambda f: int(f.name.removeprefix("round_"))):
        try:
            data = read_json(folder / ROUND_FILE)
        except (FileNotFoundError, ValueError):
            continue
        spec = RoundSpec(**data)
        if spec.run != run or (spec.round, spec.port) in done or round_ended(state, spec):
            continue
        return spec
    return None


def round_ended(state: Path, spec: RoundSpec) -> bool:
    try:
        ended = read_json(state / f"round_{spec.round}" / ENDED_FILE)
    except (FileNotFoundError, ValueError):
        return False
    return ended.get("run") == spec.run and ended.get("port") == spec.port


@dataclass
class LoadedSearch:
    """What a worker holds for one search run: loaded once, used by each of its rounds."""

    run: str
    cfg: object  # PipelineConfig
    schema: object  # Schema
    subset: object  # Rows: the training rows every round's trials train on
    validation: object  # Rows
    preprocessing: dict
    watch: object  # SearchWatch


class Worker:
    """One search worker: serves the rounds of the search runs published in `state`."""

    def __init__(self, state: Path, worker_id: str, oracle_host: str, log=print):
        self.state, self.worker_id, self.oracle_host, self.log = state, worker_id, oracle_host, log
        self.loaded: LoadedSearch | None = None

    def load(self, spec: SearchSpec, root: Path):
        """The search run's config, data and tracking, once per run."""
        from pipeline import compute
        from pipeline.config import validate_config
        from pipeline.designs import Design
        from pipeline.paths import Paths
        from pipeline.prepared import load_splits, subsample
        from pipeline.search.watch import SearchWatch, TrackedSearch
        from pipeline.tracking import NestedRuns

        cfg = validate_config(spec.config, warn=False)
        compute.apply(cfg.compute)
        paths = Paths(root)
        splits, schema = load_splits(paths)
        preprocessing = Design.load(paths.design / "design.json").preprocessing
        watch = TrackedSearch(NestedRuns(**spec.tracking)) if spec.tracking else SearchWatch()
        subset = subsample(splits.train, cfg.search.subset_fraction, cfg.search.seed, schema.task.single_label)
        self.loaded = LoadedSearch(spec.run, cfg, schema, subset, splits.validation, preprocessing, watch)

    def serve_round(self, spec: RoundSpec) -> None:
        """Run trials of one round until its oracle says stop."""
        from pipeline.designs import DesignSpace
        from pipeline.search.space import DesignHyperModel
        from pipeline.search.tuner import DesignTuner, round_oracle, search_trials

        loaded = self.loaded
        cfg, watch = loaded.cfg, loaded.watch
        space = DesignSpace.from_dict(spec.space, cfg)
        hypermodel = DesignHyperModel(cfg, loaded.schema, loaded.preprocessing, space, spec.defaults,
                                      spec.trial_epochs, spec.n_train, spec.clipnorm)
        deadline = time.monotonic() + (spec.deadline_unix - time.time())
        oracle = round_oracle(cfg, hypermodel, spec.max_trials, deadline, spec.seed)
        # set for good, not restored: a round given up on (see serve_until_ended) must not undo a later one's
        os.environ.update(kerastuner_env(self.worker_id, self.oracle_host, spec.port))
        tuner = DesignTuner(
            oracle, hypermodel, directory=str(self.state / f"round_{spec.round}"), project_name="search",
            on_trial_begin=lambda trial_id: watch.trial_started(spec.round, spec.fraction, trial_id, self.worker_id),
            on_trial_end=lambda record: watch.trial_ended(spec.round, spec.fraction, record))
        search_trials(tuner, cfg, hypermodel, loaded.subset, loaded.validation, deadline)

    def serve(self, run: str | None = None, root: Path = Path(".")) -> int:
        """Serve search runs (only `run`, when given: then return when it is done)."""
        done: set = set()
        while True:
            try:
                spec = SearchSpec(**read_json(self.state / SEARCH_FILE))
            except (FileNotFoundError, ValueError):
                time.sleep(POLL_S)
                continue
            over = self.run_done(spec.run)
            if over and spec.run == run:
                return 0
            if over or (run is not None and spec.run != run):
                time.sleep(POLL_S)  # a search that is over, or not the one this worker was started for
                continue
            if self.loaded is None or self.loaded.run != spec.run:
                self.load(spec, Path(spec.root) if run is not None else root)
                done = set()
                self.log(f"search {self.worker_id}: serving search run {spec.run}")
            round_spec = open_round(self.state, spec.run, done)
            if round_spec is None:
                time.sleep(POLL_S)
                continue
            self.serve_until_ended(round_spec)
            done.add((round_spec.round, round_spec.port))

    def serve_until_ended(self, spec: RoundSpec) -> None:
        """Serve a round in a thread; give up on it once the chief has ended the round (a worker that
        came late would otherwise wait for an oracle that is gone)."""
        errors: list[BaseException] = []

        def target():
            try:
                self.serve_round(spec)
            except BaseException as exc:  # noqa: BLE001  (reported below, in the worker's main thread)
                errors.append(exc)

        thread = threading.Thread(target=target, name=f"round-{spec.round}", daemon=True)
        thread.start()
        ended_at = None
        while thread.is_alive():
            thread.join(POLL_S)
            if ended_at is None and round_ended(self.state, spec):
                ended_at = time.monotonic()
            if ended_at is not None and time.monotonic() - ended_at > 30:
                self.log(f"search {self.worker_id}: round {spec.round} ended without this worker; going on")
                return
        if errors and not round_ended(self.state, spec):
            raise errors[0]

    def run_done(self, run: str) -> bool:
        try:
            return read_json(self.state / DONE_FILE).get("run") == run
        except (FileNotFoundError, ValueError):
            return False


def watch_parent(parent: int) -> None:
    """Exit when the process that started this worker is gone (e.g. the stage was killed)."""
    def check():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(1)

    threading.Thread(target=check, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="automl search-worker",
        description="Run trials for a redesign search that uses KerasTuner's distributed mode: the redesign "
                    "stage (search.workers) is the chief; this worker trains the trials it hands out.")
    parser.add_argument("--state", required=True, help="the search's state folder (shared with the chief)")
    parser.add_argument("--id", default=f"{socket.gethostname()}-{os.getpid()}",
                        help="this worker's KerasTuner tuner id (unique; reuse it to resume its trial)")
    parser.add_argument("--oracle-host", default="127.0.0.1", help="where the chief serves the oracle")
    parser.add_argument("--root", default=".", help="the checkout with the same code and data (default: here)")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # a local worker: serve this search run, then exit
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cores", help="CPU cores to run on, e.g. 0,1 (default: all)")
    args = parser.parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):  # Linux
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})  # before TensorFlow sizes its thread pools
    if args.parent:
        watch_parent(args.parent)
    sys.stdout = _DropConditionPrints(sys.stdout)
    state = Path(args.state)
    if not state.is_dir():
        print(f"error: search-worker: --state {state} is not a folder", file=sys.stderr)
        return 2
    worker = Worker(state, args.id, args.oracle_host)
    return worker.serve(args.run, Path(args.root))
