"""Command line: `automl <stage> [hydra overrides]` (or `python -m pipeline ...`), `automl <stage> --help`, `automl predict ...`.

With overrides (`data=wine train.epochs=5`), conf/ is composed into params.yaml first, as
`dvc exp run -S` does, so the stages that follow see the same config.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from pipeline.config import ConfigError, compose_params, load_config, validate_config, write_params
from pipeline.errors import DataError, DesignError
from pipeline.paths import Paths
from pipeline.stages import STAGES

USAGE = f"""usage: automl <stage> [key=value ...]   (or python -m pipeline ...; automl <stage> --help: its keys)
       python -m pipeline predict --model artifacts/export/model.keras --input rows.csv [--output out.csv]
       python -m pipeline compose [key=value ...]   (write params.yaml from conf/ only)
       python -m pipeline docs                      (regenerate README's layout and design-space table)
       python -m pipeline search-worker --state DIR --oracle-host HOST   (run trials for a search: README)
stages, in order: {', '.join(STAGES)}"""


def execute_stage(name: str, overrides: list[str] | tuple = (), root: str | Path = "."):
    """Compose (if overrides are given), validate, and run one stage inside the pipeline's MLflow run."""
    started = time.monotonic()
    from pipeline.tracking import stage_run

    paths = Paths(Path(root))
    if overrides:  # validated before params.yaml is written: a typo never lands in the file
        params = compose_params(list(overrides), paths.root / "conf")
        validate_config(params)
        write_params(params, paths.params)
    cfg = load_config(paths.params)
    if "DVC_STAGE" not in os.environ and (paths.root / "dvc.yaml").is_file():
        print(f"note: {name} runs outside DVC: its outputs are not in DVC's cache, and a later `dvc exp run` "
              f"replaces them; `dvc repro -s {name}` runs it tracked", file=sys.stderr)
    module = importlib.import_module(f"pipeline.stages.{name}")
    with stage_run(cfg, name, started) as tracker:
        return module.run(cfg, paths, tracker)


def stage_help(name: str, root: str | Path = ".") -> str:
    """What a stage does and the params keys it reads (as dvc.yaml declares them), with their values."""
    import yaml

    module = importlib.import_module(f"pipeline.stages.{name}")
    summary = (module.__doc__ or "").strip()
    paths = Paths(Path(root))
    declared = yaml.safe_load(paths.root.joinpath("dvc.yaml").read_text()) if (paths.root / "dvc.yaml").is_file() else {}
    keys = [k for k in declared.get("stages", {}).get(name, {}).get("params", []) if isinstance(k, str)]
    params = (yaml.safe_load(paths.params.read_text()) or {}) if paths.params.is_file() else {}

    def lookup(key):
        value = params
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    # a whole section (`search`) is shown key by key
    keys = [f"{k}.{sub}" for k in keys for sub in (lookup(k) if "." not in k and isinstance(lookup(k), dict) else [None])
            ] if params else keys
    keys = [k.removesuffix(".None") for k in keys]
    values = {key: lookup(key) for key in keys} if params else {}
    lines = [f"usage: automl {name} [key=value ...]", "", summary, "",
             "keys it reads (dvc.yaml; set with key=value, or -S key=value under dvc exp run):"]
    lines += [f"  {key}" + (f" = {values[key]!r}" if key in values else "") for key in keys] or ["  (none)"]
    return "\n".join(lines)


def console() -> None:
    """The `automl` console command."""
    sys.exit(main(sys.argv[1:]))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "predict":
            from pipeline.predict import main as predict_main

            return predict_main(rest)
        if command == "compose":
            params = compose_params(rest)
            validate_config(params)
            write_params(params, "params.yaml")
            print("compose: params.yaml written and valid")
            return 0
        if command == "search-worker":
            from pipeline.search.workers import main as worker_main

            return worker_main(rest)
        if command == "docs":
            from pipeline.docs import main as docs_main

            return docs_main()
        if command not in STAGES:
            print(f"unknown stage {command!r}; allowed: {', '.join(STAGES)}, predict, compose, docs, search-worker", file=sys.stderr)
            return 2
        if {"-h", "--help"} & set(rest):
            print(stage_help(command))
            return 0
        execute_stage(command, rest)
        return 0
    except (ConfigError, DataError, DesignError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  (one line for the user; PIPELINE_DEBUG=1 shows the traceback)
        if os.environ.get("PIPELINE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"error: {command}: {type(exc).__name__}: {first} (PIPELINE_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1

