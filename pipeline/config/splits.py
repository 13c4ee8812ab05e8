"""Split kinds: one class per kind, chosen by `method` (a Hydra group: `-S split=group`), each with
its own fields, its own checks and the way it assigns rows to train, validation and test.

| kind         | rows go                                                            | needs          |
|--------------|--------------------------------------------------------------------|----------------|
| `auto`       | stratified for classes, random otherwise; time order for windows   |                |
| `random`     | shuffled                                                           |                |
| `stratified` | shuffled, every class in the same share in each split              | classes        |
| `group`      | whole groups: rows sharing `column` stay in one split              | `column`       |
| `time`       | ordered by `column` (default: data.time_column): train, validation, test | a time column |

A kind is one class here registered with :func:`split_kind`; the config accepts it by its
`method` and `conf/split/<method>.yaml` gives its defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Union

import numpy as np
from pydantic import Field

from pipeline.config.errors import KeyProblem
from pipeline.config.space import Strict
from pipeline.errors import DataError

SPLIT_KINDS: dict[str, type[SplitSettings]] = {}


def split_kind(cls):
    """Register a split kind under its `method`."""
    SPLIT_KINDS[cls.model_fields["method"].default] = cls
    return cls


@dataclass(frozen=True)
class SplitKeys:
    """What some kinds split by: each row's key (group or time stamp), and the class names."""

    key: np.ndarray | None = None
    classes: list[str] | None = None


class SplitSettings(Strict):
    """Train/validation/test shares and a seed; `column` is the column a kind is keyed on, if any."""

    method: str
    validation: float = Field(0.15, gt=0.0, lt=0.5, description="share of all rows for validation")
    test: float = Field(0.2, gt=0.0, lt=0.5, description="share of all rows for test")
    seed: int = 42
    column: str | None = Field(None, description="group: the group key; time: the time stamps")
    # rows that shuffled folds may mix (a group or time split keeps rows apart for a reason folds would undo)
    exchangeable: ClassVar[bool] = True

    def check(self, task, data) -> None:
        """Refuse a kind that cannot work with this task or data (raises KeyProblem)."""
        if self.column is not None:
            raise KeyProblem("split.column", self.column, f"a {self.method} split reads no column "
                             "(group and time splits do)")
        if data.window is not None:
            raise KeyProblem("split.method", self.method, "forecasting windows are split in time order: auto or time")

    def key_column(self, data) -> str | None:
        """The data column this split needs the values of (prepare keeps it aside, not as a feature)."""
        return None

    def key_values(self, values, where: str) -> np.ndarray:
        """The key column's values as this kind reads them."""
        raise NotImplementedError

    def concrete(self, task, windows: bool) -> SplitSettings:
        """The kind that actually assigns the rows (auto resolves itself)."""
        return self

    def assign(self, pool: np.ndarray, y: np.ndarray, val_share: float, test_share: float,
               keys: SplitKeys) -> dict[str, np.ndarray]:
        raise NotImplementedError


class _Shuffled(SplitSettings):
    """Kinds that draw the test rows, then the validation rows, from a seeded shuffle."""

    def assign(self, pool, y, val_share, test_share, keys):
        parts = {"train": pool}
        for name, share in (("test", test_share), ("validation", val_share)):
            if share <= 0:
                continue
            # the validation share is of all rows, so of what is left after the test rows are out
            fraction = share / (1.0 - test_share) if name == "validation" else share
            parts["train"], parts[name] = self.divide(parts["train"], y, fraction, keys)
        return parts

    def divide(self, rows, y, fraction, keys):
        from sklearn.model_selection import train_test_split

        stratify = self.stratify_by(rows, y, keys)
        try:
            return train_test_split(rows, test_size=fraction, random_state=self.seed, stratify=stratify)
        except ValueError as exc:
            raise DataError(f"split: cannot make a {self.method} split of {len(rows)} rows into "
                            f"{1 - fraction:.0%}/{fraction:.0%}: {exc}") from None

    def stratify_by(self, rows, y, keys):
        return None


@split_kind
class AutoSplit(SplitSettings):
    """Stratified for classes, random otherwise, and time order for forecasting windows."""

    method: Literal["auto"] = "auto"

    def check(self, task, data):
        if self.column is not None:
            raise KeyProblem("split.column", self.column, "an auto split reads no column "
                             "(use -S split=group or -S split=time)")

    def concrete(self, task, windows):
        shared = self.model_dump(exclude={"method"})
        if windows:
            return TimeSplit(**shared)
        return (StratifiedSplit if task.single_label else RandomSplit)(**shared)


@split_kind
class RandomSplit(_Shuffled):
    method: Literal["random"] = "random"


@split_kind
class StratifiedSplit(_Shuffled):
    method: Literal["stratified"] = "stratified"

    def check(self, task, data):
        super().check(task, data)
        if not task.single_label:
            raise KeyProblem("split.method", self.method, f"stratified needs classes; goal.task is {task.name}")

    def stratify_by(self, rows, y, keys):
        labels, counts = np.unique(y[rows], return_counts=True)
        if counts.min() < 2:
            label = labels[counts.argmin()]
            name = keys.classes[int(label)] if keys.classes else label
            raise DataError(f"split: class {name!r} has {counts.min()} row(s); a stratified split needs at least 2 "
                            "per class (add rows, drop the class, or use -S split=random)")
        return y[rows]


@split_kind
class GroupSplit(_Shuffled):
    method: Literal["group"] = "group"
    exchangeable: ClassVar[bool] = False
    column: str | None = Field(None, description="rows sharing this column's value stay in one split")

    def check(self, task, data):
        if self.column is None:
            raise KeyProblem("split.column", None, "a group split needs the column whose values keep rows "
                             "together: -S split.column=<column>")
        if data.window is not None:
            raise KeyProblem("split.method", self.method, "forecasting windows are split in time order: auto or time")
        if data.source not in ("csv", "parquet"):
            raise KeyProblem("split.method", self.method, "a group split reads a column of a csv/parquet table")

    def key_column(self, data):
        return self.column

    def key_values(self, values, where):
        return values.astype(str).to_numpy(dtype=str)

    def divide(self, rows, y, fraction, keys):
        from sklearn.model_selection import GroupShuffleSplit

        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=self.seed)
        keep, out = next(splitter.split(rows, groups=keys.key[rows]))
        if len(keep) == 0 or len(out) == 0:
            raise DataError(f"split: {len(np.unique(keys.key[rows]))} groups cannot be divided "
                            f"{1 - fraction:.0%}/{fraction:.0%} with whole groups on each side")
        return rows[keep], rows[out]


@split_kind
class TimeSplit(SplitSettings):
    method: Literal["time"] = "time"
    exchangeable: ClassVar[bool] = False

    def check(self, task, data):
        if self.column is None and not data.time_column:
            raise KeyProblem("split.column", None, "a time split orders rows by a column: set split.column "
                             "(or data.time_column)")
        if data.source not in ("csv", "parquet"):
            raise KeyProblem("split.method", self.method, "a time split reads a column of a csv/parquet table")
        if data.window is not None and self.column not in (None, data.time_column):
            raise KeyProblem("split.column", self.column, f"forecasting windows are ordered by data.time_column "
                             f"({data.time_column})")

    def key_column(self, data):
        return self.column or data.time_column

    def key_values(self, values, where):
        from pipeline.features import time_values

        return time_values(values, where)

    def assign(self, pool, y, val_share, test_share, keys):
        """Oldest rows train, then validation, newest test: nothing is predicted from its future."""
        ordered = pool[np.argsort(keys.key[pool], kind="stable")]
        n_test, n_val = round(test_share * len(ordered)), round(val_share * len(ordered))
        n_train = len(ordered) - n_test - n_val
        return {"train": ordered[:n_train], "validation": ordered[n_train:n_train + n_val],
                "test": ordered[n_train + n_val:]}


SplitConfig = Annotated[Union[tuple(SPLIT_KINDS.values())], Field(discriminator="method")]
