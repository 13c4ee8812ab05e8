"""Every file a stage reads or writes, relative to the repo root; dvc.yaml declares the same paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path(".")

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    # stage outputs, in stage order
    @property
    def goal(self) -> Path:
        return self.artifacts / "goal.json"

    @property
    def prepared(self) -> Path:
        return self.artifacts / "prepared"

    @property
    def split(self) -> Path:
        return self.artifacts / "split"

    @property
    def design(self) -> Path:
        return self.artifacts / "design"

    @property
    def train(self) -> Path:
        return self.artifacts / "train"

    @property
    def redesign(self) -> Path:
        return self.artifacts / "redesign"

    @property
    def search_state(self) -> Path:
        """KerasTuner projects and full-data runs, kept across runs so a search can resume."""
        return self.root / "state" / "redesign"

    @property
    def validate(self) -> Path:
        return self.artifacts / "validate"

    @property
    def export(self) -> Path:
        return self.artifacts / "export"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
