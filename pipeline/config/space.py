"""Search-space primitives: a value the redesign search may vary, with the initial design's default.

    IntRange    {default, min, max}           a plain integer fixes it
    FloatRange  {default, min, max, log}      a plain number fixes it
    Choice      {default, choices}            a plain value fixes it; a list gives the choices

The families (pipeline/models/families/) and the config sections declare their hyperparameters
with the field helpers :func:`choice`, :func:`int_range` and :func:`float_range`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

__all__ = ["BatchSize", "Choice", "FamilySpace", "FloatRange", "IntRange", "PositiveInt", "Strict", "choice",
           "defaults", "describe_value", "float_range", "int_range"]


class Strict(BaseModel):
    """A config section: unknown keys, NaN and infinite numbers are refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class IntRange(Strict):
    """An integer the search may vary in [min, max]; `default` is the initial design's value.

    A plain number fixes it (min = max = default). A default outside the range is refused, not
    moved: narrowing a range from the command line past the default needs the default too.
    """

    default: int | None = None
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        return {"default": value, "min": value, "max": value} if isinstance(value, int) else value

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        _check_default(self)
        return self


def _check_default(spec) -> None:
    """A range's default is its min when unset, and must lie within [min, max]."""
    if spec.default is None:
        object.__setattr__(spec, "default", spec.min)
    elif not spec.min <= spec.default <= spec.max:
        raise ValueError(f"the default {spec.default} is outside [{spec.min}, {spec.max}]; set the default too "
                         "(e.g. -S key.default=...), or a plain value to fix it")


class FloatRange(Strict):
    """A float the search may vary in [min, max] (log scale when `log`); a plain number fixes it."""

    default: float | None = None
    min: float
    max: float
    log: bool = False

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {"default": value, "min": value, "max": value}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.log and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        _check_default(self)
        return self

    def within(self, low: float, high: float, low_open: bool = False, high_open: bool = False) -> bool:
        """Whether the whole range lies in [low, high] (open ends as told)."""
        above = self.min > low if low_open else self.min >= low
        below = self.max < high if high_open else self.max <= high
        return above and below

    def clamp(self, value: float) -> float:
        return min(max(float(value), self.min), self.max)

    def scaled(self, factor: float, ceiling: float | None = None) -> FloatRange:
        """The range (and default) multiplied by `factor`, the top capped at `ceiling`."""
        high = self.max * factor if ceiling is None else min(self.max * factor, ceiling)
        low = min(self.min * factor, high)
        return self.model_copy(update={"min": low, "max": high,
                                       "default": min(max(self.default * factor, low), high)})


T = TypeVar("T")


class Choice(Strict, Generic[T]):
    """One of `choices` for the search; `default` is the initial design's (a plain value fixes it,
    a list gives the choices with the first as default). A default missing from the choices is refused.
    """

    default: T | None = None
    choices: list[T] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        if isinstance(value, list):
            return {"choices": value}
        return value if isinstance(value, (dict, BaseModel)) else {"default": value, "choices": [value]}

    may_be_auto: ClassVar[bool] = False  # the default may be `auto`, resolved where the data are known

    @model_validator(mode="after")
    def _default_in_choices(self) -> Choice:
        if self.default is None:
            object.__setattr__(self, "default", self.choices[0])
        elif not (self.may_be_auto and self.default == "auto") and self.default not in self.choices:
            raise ValueError(f"the default {self.default!r} is not one of the choices {self.choices}"
                             f"{' (or auto)' if self.may_be_auto else ''}; add it to the choices, or choose "
                             "another default")
        return self


class BatchSize(Choice[int]):
    """The batch size: a choice of sizes whose default may be `auto`, chosen for the training rows
    (:meth:`for_rows`): about STEPS_PER_EPOCH steps an epoch."""

    STEPS_PER_EPOCH: ClassVar[int] = 150
    default: int | Literal["auto"] | None = None
    may_be_auto: ClassVar[bool] = True

    @model_validator(mode="after")
    def _positive(self) -> BatchSize:
        if min(self.choices) < 1:
            raise ValueError(f"batch sizes must be 1 or more; got {self.choices}")
        return self

    def for_rows(self, rows: int) -> int:
        """The default, or (auto) the choice nearest (log scale) to rows / STEPS_PER_EPOCH."""
        if self.default != "auto":
            return self.default
        target = max(1.0, rows / self.STEPS_PER_EPOCH)
        return min(self.choices, key=lambda size: (abs(math.log(size / target)), size))


class LabelSmoothing(Choice[float]):
    """Label smoothing shares: a choice whose default may be `auto`, the task's own share for the
    goal metric (:meth:`resolved`)."""

    default: float | Literal["auto"] | None = None
    may_be_auto: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        # a plain `auto` is conf/config.yaml's default: the task's share, the search also trying 0
        return {"default": "auto", "choices": [0.0]} if value == "auto" else Choice._fixed(value)

    def resolved(self, share: float) -> LabelSmoothing:
        """`auto` made concrete: the default `share`, searched beside the choices (a task without classes
        has share 0 and only 0 among its choices). An explicit default stays as written."""
        if self.default != "auto":
            return self
        return self.model_copy(update={"default": share, "choices": sorted({share, *self.choices})})


def choice(default: Any, choices: list, description: str = "") -> Any:
    """A field holding a :class:`Choice` with this default and these choices."""
    return Field(default_factory=lambda: {"default": default, "choices": list(choices)}, validate_default=True,
                 description=description)


def int_range(default: int, low: int, high: int, description: str = "") -> Any:
    return Field(default_factory=lambda: {"default": default, "min": low, "max": high}, validate_default=True,
                 description=description)


def float_range(default: float, low: float, high: float, log: bool = False, description: str = "") -> Any:
    return Field(default_factory=lambda: {"default": default, "min": low, "max": high, "log": log},
                 validate_default=True, description=description)


class FamilySpace(Strict):
    """A model family's own hyperparameters (each an IntRange, FloatRange or Choice)."""


def defaults(space: BaseModel) -> dict:
    """Each range's or choice's default: the values of the initial design."""
    return {name: getattr(space, name).default for name in type(space).model_fields}


def describe_value(spec) -> str:
    """A range or choice as one short phrase, for docs: `2 (1-3)`, `relu (relu, gelu)`."""
    if isinstance(spec, Choice):
        options = ", ".join(str(c) for c in spec.choices)
        return f"{spec.default}" if len(spec.choices) == 1 else f"{spec.default} ({options})"
    if spec.min == spec.max:
        return f"{spec.default:g}"
    return f"{spec.default:g} ({spec.min:g}-{spec.max:g}{', log' if getattr(spec, 'log', False) else ''})"
