"""Writing stage outputs: JSON files, and folders that appear only when complete."""

from __future__ import annotations

import json
import math
import shutil
from contextlib import contextmanager
from pathlib import Path


def finite(payload):
    """The payload with NaN and infinite numbers as null, so the file stays valid JSON."""
    if isinstance(payload, dict):
        return {k: finite(v) for k, v in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [finite(v) for v in payload]
    if isinstance(payload, float) and not math.isfinite(payload):
        return None
    if hasattr(payload, "item") and not isinstance(payload, (str, bytes)):  # NumPy scalars
        return finite(payload.item())
    return payload


def write_json(path: Path, payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(finite(payload), indent=2, default=float, allow_nan=False) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


@contextmanager
def replaced_dir(target: Path):
    """A fresh temporary folder that replaces `target` only when the block succeeds.

    A stage that fails half-way leaves no partial output behind for DVC to cache as valid.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
