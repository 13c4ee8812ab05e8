"""The model family registry: every module in pipeline/models/families/ registers one Family.

The config schema (one sub-section per family), the search space, the diagnosis (which
hyperparameter makes a design deeper or wider) and the README's design-space table all read
the families from here; nothing else lists them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

# What a family body can read: images, table columns, sequences of steps, texts as word ids, or
# texts as a bag of n-grams (see pipeline/schema.py Schema.body_kind).
INPUT_KINDS = ("image", "tabular", "sequence", "text", "ngrams")


def no_depth_limit(input_shape: list[int]) -> int | None:
    return None


@dataclass(frozen=True)
class FineTune:
    """A second training phase (transfer learning): what was unfrozen, at which learning rate, how long."""

    unfrozen: str  # e.g. "the top 20 of 52 backbone layers (batch norm kept frozen)"
    learning_rate_factor: float  # times the first phase's learning rate
    epochs: int


@dataclass(frozen=True)
class Family:
    """One model family, declared once.

    Args:
        name: the key in the config (`model.<name>`) and in designs.
        summary: what the body is, in a phrase (docs and reports).
        reads: the input kinds it can build a body for.
        space: its hyperparameters, each a range or choice with the initial design's default.
        depth: the hyperparameter the underfitting diagnosis grows (deeper).
        widths: the hyperparameters it widens (wider).
        build: `build(x, hp) -> tensor`, the body between the input layers and the task head.
        searched_for: input kinds whose default search includes it.
        initial_for: input kinds whose initial design (`model.family: auto`) it is.
        max_depth: the deepest design that fits an input shape (None: no limit).
        reads_pixels: the body gets images scaled to [0, 1] whatever the schema's scaling (a
            pretrained network maps them to the range it was trained on).
        fine_tune: `fine_tune(model, hp) -> FineTune | None`: after the first training phase,
            unfreeze what the second phase trains (None: one phase only).
        freezes: the depth hyperparameter counts unfrozen layers: the overfitting diagnosis
            lowers it (freeze more), the underfitting one raises it.
        input_note: `input_note(input_shape, hp) -> str | None`: what the body does to the input
            that the user should know (e.g. upsampling small images), noted in the design.
        ensembles: the body outputs (batch, members, features): the head gives one prediction
            per member, each trained on its own loss, and the model outputs their average.
    """

    name: str
    summary: str
    reads: tuple[str, ...]
    space: type  # a pipeline.config.space.FamilySpace
    depth: str
    widths: tuple[str, ...]
    build: Callable[[Any, dict], Any] = field(repr=False)
    searched_for: tuple[str, ...] = ()
    initial_for: tuple[str, ...] = ()
    max_depth: Callable[[list[int]], int | None] = field(default=no_depth_limit, repr=False)
    reads_pixels: bool = False
    fine_tune: Callable[[Any, dict], FineTune | None] | None = field(default=None, repr=False)
    freezes: bool = False
    input_note: Callable[[list[int], dict], str | None] | None = field(default=None, repr=False)
    ensembles: bool = False

    def __post_init__(self):
        fields = set(self.space.model_fields)
        unknown = [n for n in (self.depth, *self.widths) if n not in fields]
        if unknown:
            raise ValueError(f"family {self.name}: {unknown} are not in its space ({sorted(fields)})")
        for kinds in (self.reads, self.searched_for, self.initial_for):
            if not set(kinds) <= set(INPUT_KINDS):
                raise ValueError(f"family {self.name}: unknown input kinds {set(kinds) - set(INPUT_KINDS)}")
        if not set(self.searched_for) <= set(self.reads) or not set(self.initial_for) <= set(self.reads):
            raise ValueError(f"family {self.name}: it can only be searched or start for input kinds it reads")

    def depth_limit(self, input_shape) -> int | None:
        return self.max_depth(list(input_shape))


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"two families named {family.name!r}")
    FAMILIES[family.name] = family
    return family


def _discover() -> None:
    """Import every module in pipeline/models/families/ (each registers itself), in name order."""
    package = importlib.import_module("pipeline.models.families")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        importlib.import_module(f"{package.__name__}.{info.name}")
    for kind in INPUT_KINDS:
        starters = [f.name for f in FAMILIES.values() if kind in f.initial_for]
        if len(starters) != 1:
            raise ValueError(f"input kind {kind}: exactly one family must be its initial design; got {starters}")


def ordered() -> list[Family]:
    """Every family, by name (whatever order their modules were imported in)."""
    return sorted(FAMILIES.values(), key=lambda f: f.name)


def family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown family {name!r}; known: {', '.join(FAMILIES)}") from None


def reading(kind: str) -> list[str]:
    """The families that can read `kind` input."""
    return [f.name for f in ordered() if kind in f.reads]


def searched_for(kind: str) -> list[str]:
    """The families the search tries by default for `kind` input."""
    return [f.name for f in ordered() if kind in f.searched_for]


def initial_for(kind: str) -> str:
    """The family of the initial design for `kind` input (`model.family: auto`)."""
    return next(f.name for f in ordered() if kind in f.initial_for)


def design_space_markdown() -> str:
    """The README's design-space table, from the registry (a test keeps the README equal to it)."""
    from pipeline.config.space import describe_value

    lines = ["| family | reads | initial for | searched for | its own hyperparameters: default (range or choices) |",
             "|---|---|---|---|---|"]
    for f in ordered():
        space = f.space()
        values = "; ".join(f"`{name}` {describe_value(getattr(space, name))}" for name in type(space).model_fields)
        lines.append(f"| `{f.name}` | {', '.join(f.reads)} | {', '.join(f.initial_for) or '-'} | "
                     f"{', '.join(f.searched_for) or '-'} | {f.summary}: {values} |")
    return "\n".join(lines) + "\n"


_discover()
