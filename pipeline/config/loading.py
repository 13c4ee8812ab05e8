"""Reading, composing and validating the config, and phrasing every problem for its writer.

    `goal.metric`: got 'acuracy'; allowed for multiclass: accuracy, balanced_accuracy, macro_f1, auc
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.errors import ConfigError, KeyProblem
from pipeline.config.sections import PipelineConfig
from pipeline.config.splits import SPLIT_KINDS


def upgrade(raw: dict) -> tuple[dict, list[str]]:
    """Old keys rewritten to their new home, with a note for each (what to write instead)."""
    raw, notes = copy.deepcopy(raw), []
    data, split = raw.get("data"), raw.get("split")
    if isinstance(data, dict) and "group_column" in data:
        column = data.pop("group_column")
        if column is not None and isinstance(split, dict):
            if split.get("method") == "group" and split.get("column") is None:
                split["column"] = column
                notes.append(f"`data.group_column` is deprecated; read as `split.column` ({column!r}). "
                             f"Write -S split=group -S split.column={column}")
            else:
                notes.append(f"`data.group_column` is deprecated and ignored here: it applies to a group split "
                             f"only. Write -S split=group -S split.column={column}")
    return raw, notes


def _allowed_keys(path: tuple) -> list[str]:
    """Field names of the section reached by following `path` from the top."""
    current: Any = PipelineConfig
    for part in path:
        if current is None or not isinstance(part, str):
            return []
        if part in SPLIT_KINDS and path[0] == "split":
            current = SPLIT_KINDS[part]
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        candidates = [field.annotation, *get_args(field.annotation)]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None and part == "split":
            return sorted({k for kind in SPLIT_KINDS.values() for k in kind.model_fields})
    return list(current.model_fields) if current is not None else []


def _shown_key(loc: tuple) -> str:
    """The key as the user writes it: no validator names, no split-kind tag."""
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    if len(parts) > 1 and parts[0] == "split" and parts[1] in SPLIT_KINDS:
        parts.pop(1)
    return ".".join(str(p) for p in parts)


def _describe(error: dict) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = _shown_key(loc)
    kind = error["type"]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), KeyProblem):
        return error["ctx"]["error"].message
    if kind == "extra_forbidden":
        return f"`{key}`: unknown key; allowed keys: {', '.join(_allowed_keys(loc[:-1]))}"
    if kind == "missing":
        return f"`{key}`: missing; this key is required"
    if kind == "literal_error":
        return f"`{key}`: got {error['input']!r}; allowed: {error['ctx']['expected']}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        return f"`{key}.method`: got {tag!r}; allowed: {', '.join(SPLIT_KINDS)}"
    message = error["msg"].removeprefix("Value error, ")
    return f"`{key}`: got {error['input']!r}; {message[0].lower()}{message[1:]}"


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def validate_config(raw: dict, warn: bool = True) -> PipelineConfig:
    """Validate a composed config dict, raising ConfigError that lists every problem.

    Deprecated keys still work; with `warn`, a note saying what to write instead goes to stderr.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    unset = [key for key, value in _leaves(raw) if value == "???"]
    if unset:
        raise ConfigError("invalid config:\n  " + "\n  ".join(
            f"`{key}`: missing; this key is required (e.g. -S {key}=...)" for key in unset))
    raw, notes = upgrade(raw)
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(lines))) from None
    for note in notes if warn else ():
        print(f"warning: {note}", file=sys.stderr)
    return cfg


def load_config(params_path: str | Path = "params.yaml") -> PipelineConfig:
    """Read params.yaml (composed from conf/ by DVC or by `python -m pipeline`) and validate it."""
    path = Path(params_path)
    if not path.exists():
        raise ConfigError(f"config: {path} not found; run from the repo root or compose it first")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    return validate_config(raw or {})


def compose_params(overrides: list[str], conf_dir: str | Path = "conf") -> dict:
    """Compose conf/ with Hydra overrides, the same way `dvc exp run -S` composes params.yaml."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    conf_dir = Path(conf_dir).resolve()
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            cfg = compose(config_name="config", overrides=list(overrides))
    except HydraException as exc:
        unknown = re.search(r"Could not override '([\w.]+)'", str(exc))
        if unknown:  # Hydra would suggest `+key=...`, which our schema then refuses: name the allowed keys
            key = unknown.group(1)
            *section, _ = key.split(".")
            raise ConfigError(f"invalid config:\n  `{key}`: unknown key; allowed keys: "
                              f"{', '.join(_allowed_keys(tuple(section))) or 'none'}") from None
        groups = sorted(p.name for p in conf_dir.iterdir() if p.is_dir())
        choices = {g: sorted(f.stem for f in (conf_dir / g).glob("*.yaml")) for g in groups}
        allowed = "; ".join(f"{g}: {', '.join(c)}" for g, c in choices.items())
        raise ConfigError(f"config override rejected: {str(exc).splitlines()[0]}\n  config groups and choices: "
                          f"{allowed}") from None
    return OmegaConf.to_container(cfg, resolve=True)


def write_params(params: dict, path: str | Path = "params.yaml") -> None:
    Path(path).write_text(yaml.safe_dump(params, sort_keys=False))
