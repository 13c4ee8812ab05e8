"""Command line: `python -m pipeline <stage> [hydra overrides]` and `python -m pipeline predict ...`.

With overrides (`data=wine train.epochs=5`), conf/ is composed into params.yaml first, as
`dvc exp run -S` does, so the stages that follow see the same config.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from pipeline.config import ConfigError, compose_params, load_config, validate_config, write_params
from pipeline.errors import DataError, DesignError
from pipeline.paths import Paths
from pipeline.stages import STAGES

USAGE = f"""usage: python -m pipeline <stage> [key=value ...]
       python -m pipeline predict --model artifacts/export/model.keras --input rows.csv [--output out.csv]
       python -m pipeline compose [key=value ...]   (write params.yaml from conf/ only)
       python -m pipeline docs                      (regenerate README's layout and design-space table)
stages, in order: {', '.join(STAGES)}"""


def execute_stage(name: str, overrides: list[str] | tuple = (), root: str | Path = "."):
    """Compose (if overrides are given), validate, and run one stage inside the pipeline's MLflow run."""
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
    with stage_run(cfg, name) as tracker:
        return module.run(cfg, paths, tracker)


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
        if command == "docs":
            from pipeline.docs import main as docs_main

            return docs_main()
        if command not in STAGES:
            print(f"unknown stage {command!r}; allowed: {', '.join(STAGES)}, predict, compose, docs", file=sys.stderr)
            return 2
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

