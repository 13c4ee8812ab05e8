"""The input/output definition: written by `prepare`, completed (fitted) by `split`, read by every
later stage and saved beside the exported model for `predict` and serving.

It records the task, the input kind and shape, the feature names and column kinds, the value
scaling the model applies, how images are read, the output classes, and (after the split) the
column encodings fitted on the training rows and the model's inputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from pipeline.files import write_json
from pipeline.tasks import Task, task_named


def _compact(record) -> dict:
    """A record as JSON-ready data, without its unset (None) fields."""
    return {k: v for k, v in asdict(record).items() if v is not None}


def _from_dict(cls, data: dict):
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Scaling:
    """What the model's first layer does to raw values: rescale (x * scale + offset), standardise
    per feature with training-split statistics, or nothing."""

    kind: str  # rescale | standardize | none
    scale: float | None = None
    offset: float | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        """The range rescaled pixels end up in (for brightness/contrast augmentation)."""
        return (-1.0, 1.0) if self.offset == -1.0 else (0.0, 1.0)


RESCALE_UNIT = Scaling("rescale", 1.0 / 255.0)  # pixels 0..255 -> 0..1
RESCALE_SYMMETRIC = Scaling("rescale", 1.0 / 127.5, -1.0)  # pixels 0..255 -> -1..1
STANDARDIZE = Scaling("standardize")
NO_SCALING = Scaling("none")


@dataclass
class ColumnSpec:
    """One feature column of a typed table: its kind, missing-value strategy and model input name;
    after the split also the state fitted on the training rows (fill value, vocabulary)."""

    name: str
    kind: str  # numeric | categorical | text | image
    missing: str
    input: str
    sequence_length: int | None = None  # text: word ids (sequence) or n-grams (ngrams) per text
    vocabulary_size: int | None = None  # text
    representation: str | None = None  # text: ngrams (a TF-IDF bag) | sequence (word ids)
    ngrams: int | None = None  # text as n-grams: the longest run of words
    fill: float | None = None  # numeric
    vocabulary: list[str] | None = None  # categorical, text
    idf: list[float] | None = None  # text as n-grams: inverse document frequency of each vocabulary entry
    most_frequent: str | None = None  # categorical

    @property
    def bag(self) -> bool:
        """A text column read as a TF-IDF bag of n-grams (two model inputs: ids and weights)."""
        return self.representation == "ngrams"


@dataclass(frozen=True)
class ModelInput:
    """One input of the model: its name, shape per row, dtype, and what it holds."""

    name: str
    shape: list[int]
    dtype: str
    kind: str | None = None
    column: str | None = None
    columns: list[str] | None = None
    ids: str | None = None
    holds: str | None = None


@dataclass
class Schema:
    """The input/output definition of one pipeline's data."""

    source: str
    task: Task
    input_kind: str  # image | tabular | sequence | text
    input_shape: list[int]
    features: list[str]
    scaling: Scaling
    classes: list[str] = field(default_factory=list)  # class names; target names for multilabel
    target: list[str] = field(default_factory=list)
    n_rows: int = 0
    dtype: str = "float32"
    columns: list[ColumnSpec] = field(default_factory=list)  # typed tables: one per feature column
    image: dict = field(default_factory=dict)  # image files: ImageSettings; the predict path reads them
    categorical_encoding: str = "auto"
    text_embed_dim: int = 32
    inputs: list[ModelInput] = field(default_factory=list)  # the model's inputs, set by split

    @property
    def output_kind(self) -> str:
        return self.task.output_kind

    @property
    def n_outputs(self) -> int:
        return self.task.n_outputs(len(self.classes))

    @property
    def reads_files(self) -> bool:
        return bool(self.image)

    def image_settings(self):
        from pipeline.images import ImageSettings

        return ImageSettings(**self.image)

    def columns_of(self, kind: str) -> list[ColumnSpec]:
        return [c for c in self.columns if c.kind == kind]

    @property
    def body_kind(self) -> str:
        """What the family body reads: the input kind, except a text read as a bag of n-grams."""
        if self.input_kind == "text" and self.columns and self.columns[0].bag:
            return "ngrams"
        return self.input_kind

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(task=self.task.name, output_kind=self.output_kind, scaling=_compact(self.scaling),
                    columns=[_compact(c) for c in self.columns], inputs=[_compact(i) for i in self.inputs])
        return data

    def to_json(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Schema:
        data = {k: v for k, v in data.items() if k != "output_kind"}  # derived from the task
        data.update(task=task_named(data["task"]), scaling=_from_dict(Scaling, data["scaling"]),
                    columns=[_from_dict(ColumnSpec, c) for c in data.get("columns", [])],
                    inputs=[_from_dict(ModelInput, i) for i in data.get("inputs", [])])
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> Schema:
        return cls.from_dict(json.loads(Path(path).read_text()))
