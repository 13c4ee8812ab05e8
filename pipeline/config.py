"""The one validated schema for everything in conf/ (and so in params.yaml).

Every stage loads its settings through :func:`load_config`; a bad key or value fails here,
before any data is touched, with a message naming the key, the bad value and what is allowed:

    `goal.metric`: got 'acuracy'; allowed for multiclass: accuracy, balanced_accuracy, macro_f1, auc
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal["binary", "multiclass", "multilabel", "regression"]
Activation = Literal["relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid"]
Initializer = Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal"]
Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Family = Literal["mlp", "cnn", "resnet", "inception", "rnn", "transformer"]

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "balanced_accuracy", "macro_f1", "auc"),
    "multiclass": ("accuracy", "balanced_accuracy", "macro_f1", "auc"),
    "multilabel": ("accuracy", "macro_f1", "auc"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae"})

# Built-in sources: what they hold, so that a mismatch is caught before loading anything.
BUILTIN_SOURCES: dict[str, dict[str, str]] = {
    "digits": {"task": "multiclass", "input": "image"},
    "breast_cancer": {"task": "binary", "input": "tabular"},
    "wine": {"task": "multiclass", "input": "tabular"},
    "diabetes": {"task": "regression", "input": "tabular"},
}
# Families that can read each input kind, and (first entries) those searched when
# `model.families` is null; the very first is the `auto` initial family.
FAMILIES_BY_INPUT: dict[str, tuple[str, ...]] = {
    "image": ("cnn", "resnet", "inception", "mlp", "rnn", "transformer"),
    "tabular": ("mlp", "transformer"),
    "sequence": ("rnn", "transformer", "mlp"),
    "text": ("mlp", "rnn", "transformer"),  # over word embeddings
}
SEARCHED_BY_INPUT: dict[str, tuple[str, ...]] = {
    "image": ("cnn", "resnet", "inception"),
    "tabular": ("mlp",),
    "sequence": ("rnn", "transformer"),
    "text": ("mlp", "rnn", "transformer"),
}


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who wrote the config."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GoalConfig(_Strict):
    """What success means: the task, a metric on held-out data and its threshold."""

    task: Task
    metric: str
    threshold: float
    fail_on_miss: bool = False

    @property
    def direction(self) -> str:
        return "min" if self.metric in LOWER_IS_BETTER else "max"

    @model_validator(mode="after")
    def _metric_fits_task(self) -> GoalConfig:
        allowed = METRICS_BY_TASK[self.task]
        if self.metric not in allowed:
            raise _KeyError("goal.metric", self.metric, f"allowed for {self.task}: {', '.join(allowed)}")
        if self.metric in ("accuracy", "balanced_accuracy", "macro_f1", "auc"):
            if not 0.0 <= self.threshold <= 1.0:
                raise _KeyError("goal.threshold", self.threshold, f"allowed for {self.metric}: 0 to 1")
        elif self.metric == "r2" and self.threshold > 1.0:
            raise _KeyError("goal.threshold", self.threshold, "allowed for r2: at most 1")
        elif self.metric in LOWER_IS_BETTER and self.threshold < 0:
            raise _KeyError("goal.threshold", self.threshold, f"allowed for {self.metric}: 0 or more")
        return self


ColumnKind = Literal["numeric", "categorical", "text", "image"]
MissingStrategy = Literal["mean", "median", "zero", "most_frequent", "missing_category", "empty", "error"]
TABLE_SOURCES = ("csv", "parquet")
FILE_SOURCES = (*TABLE_SOURCES, "npz", "images")


class TextConfig(_Strict):
    """Text columns: a vocabulary of the most frequent training-split words, fixed-length id sequences."""

    vocabulary_size: int = Field(5000, ge=3)  # including the padding and unknown ids
    sequence_length: int = Field(64, ge=1)
    embed_dim: int = Field(32, ge=2)  # the model's word embedding size


class ImageConfig(_Strict):
    """How image files become model inputs; every image ends up `size` with `color` channels."""

    size: list[int] | None = Field(None, min_length=2, max_length=2)  # [height, width]; null: the images' own
    color: Literal["rgb", "grayscale"] = "rgb"
    mode: Literal["resize", "pad", "none"] = "resize"  # pad: to square with `fill`, then resize; none: sizes must match
    fill: Literal["black", "white", "noise"] = "black"
    scaling: Literal["unit", "symmetric"] = "unit"  # pixel values 0..1 or -1..1 inside the model

    @model_validator(mode="after")
    def _positive(self) -> ImageConfig:
        if self.size is not None and min(self.size) < 1:
            raise _KeyError("data.image.size", self.size, "two positive integers [height, width], or null")
        return self


class WindowConfig(_Strict):
    """Forecasting over a time-ordered table: `length` past rows predict the target `horizon` rows ahead."""

    length: int = Field(ge=2)
    horizon: int = Field(1, ge=1)


class DataConfig(_Strict):
    """Where the data comes from and what its inputs are.

    `csv`/`parquet`: a table with one target column (a list of 0/1 columns: multilabel); feature
    column kinds (numeric, categorical, text, image path) are declared in `columns` or inferred.
    `input` says what the model reads: tabular (default), text (one text column), sequence (a
    wide table: `steps` x features columns; or `window` over a time-ordered table) or image (one
    image-path column). `images`: a folder with one sub-folder per class, or a flat folder and a
    `labels` CSV (file,label). `npz`: arrays `x`, `y` (optional `classes`) whose layout `input`
    declares. `validation_path`/`test_path`: separate sources of the same form for those splits.
    """

    source: Literal["digits", "breast_cancer", "wine", "diabetes", "csv", "parquet", "images", "npz"]
    path: str | None = None
    target: str | list[str] | None = None
    features: list[str] | None = None
    input: Literal["image", "sequence", "tabular", "text"] | None = None
    columns: dict[str, ColumnKind] = Field(default_factory=dict)
    missing: dict[str, MissingStrategy] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, value):
        # conf/ writes `columns: null` so that `-S 'data.columns={city: categorical}'` can replace it
        if isinstance(value, dict):
            return {**value, **{k: {} for k in ("columns", "missing") if value.get(k, {}) is None}}
        return value
    categorical_encoding: Literal["auto", "one_hot", "embedding"] = "auto"  # auto: one-hot up to 16 categories
    text: TextConfig = Field(default_factory=TextConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    labels: str | None = None
    steps: int | None = Field(None, ge=2)
    window: WindowConfig | None = None
    time_column: str | None = None
    group_column: str | None = None
    validation_path: str | None = None
    test_path: str | None = None

    @model_validator(mode="after")
    def _files_need_what_they_hold(self) -> DataConfig:
        if self.source in FILE_SOURCES and not self.path:
            raise _KeyError("data.path", self.path, f"a path is required when data.source is {self.source}")
        if self.source in TABLE_SOURCES and not self.target:
            raise _KeyError("data.target", self.target, f"a column name (or a list) is required for {self.source}")
        if self.source == "npz" and not self.input:
            raise _KeyError("data.input", self.input, "required for npz: image (n, H, W, C), "
                            "sequence (n, steps, features) or tabular (n, features)")
        if self.source in BUILTIN_SOURCES and self.input not in (None, BUILTIN_SOURCES[self.source]["input"]):
            raise _KeyError("data.input", self.input,
                            f"data '{self.source}' is {BUILTIN_SOURCES[self.source]['input']} input")
        if self.source == "images" and self.input not in (None, "image"):
            raise _KeyError("data.input", self.input, "an image folder is image input")
        if self.source == "npz" and self.input == "text":
            raise _KeyError("data.input", self.input, "npz holds image, sequence or tabular arrays")
        if self.window is not None and (self.source not in TABLE_SOURCES or not self.time_column):
            raise _KeyError("data.window", self.window.model_dump(),
                            "forecasting windows need a csv/parquet table and data.time_column")
        if (self.steps or self.window) and self.input not in (None, "sequence"):
            raise _KeyError("data.input", self.input, "data.steps and data.window make sequence input")
        unsupported = [k for k in ("validation_path", "test_path") if getattr(self, k) and self.source not in FILE_SOURCES]
        if unsupported:
            raise _KeyError(f"data.{unsupported[0]}", getattr(self, unsupported[0]),
                            f"separate sources need a file source ({', '.join(FILE_SOURCES)})")
        return self

    @property
    def input_kind(self) -> str:
        if self.steps or self.window:
            return "sequence"
        if self.input:
            return self.input
        if self.source == "images":
            return "image"
        return BUILTIN_SOURCES.get(self.source, {}).get("input", "tabular")


class SplitConfig(_Strict):
    """Train/validation/test fractions and how rows are assigned; always seeded.

    auto: stratified for classification, random otherwise (time-ordered for forecasting windows).
    group: rows sharing `data.group_column` stay in one split. time: ordered by
    `data.time_column`, validation after train and test last. Splits given as separate sources
    (`data.validation_path`, `data.test_path`) are used as they are.
    """

    method: Literal["auto", "random", "stratified", "group", "time"] = "auto"
    validation: float = Field(0.15, gt=0.0, lt=0.5)
    test: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42


def clip(value, low, high):
    """`value` moved into [low, high]."""
    return min(max(value, low), high)


class IntRange(_Strict):
    """An integer the search may vary in [min, max]; `default` is the initial design's value.

    A plain number fixes it (min = max = default). A default outside the range is moved to the
    nearest end, so narrowing a range from the command line moves the initial design with it.
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
        object.__setattr__(self, "default", clip(self.min if self.default is None else self.default, self.min, self.max))
        return self


class FloatRange(_Strict):
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
        object.__setattr__(self, "default", clip(self.min if self.default is None else self.default, self.min, self.max))
        return self


T = TypeVar("T")


class Choice(_Strict, Generic[T]):
    """One of `choices` for the search; `default` is the initial design's (a plain value fixes it).

    A default missing from the choices falls back to the first choice.
    """

    default: T | None = None
    choices: list[T] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fixed(cls, value):
        if isinstance(value, list):
            return {"choices": value}
        return value if isinstance(value, (dict, BaseModel)) else {"default": value, "choices": [value]}

    @model_validator(mode="after")
    def _default_in_choices(self) -> Choice:
        if self.default not in self.choices:
            object.__setattr__(self, "default", self.choices[0])
        return self


def _choice(default, choices):
    return Field(default_factory=lambda: {"default": default, "choices": list(choices)}, validate_default=True)


def _int_range(default, low, high):
    return Field(default_factory=lambda: {"default": default, "min": low, "max": high}, validate_default=True)


def _float_range(default, low, high, log=False):
    return Field(default_factory=lambda: {"default": default, "min": low, "max": high, "log": log},
                 validate_default=True)


class CommonSpace(_Strict):
    """Layer choices every family shares."""

    activation: Choice[Activation] = _choice("relu", ["relu", "gelu"])
    initializer: Choice[Initializer] = _choice("he_normal", ["he_normal", "glorot_uniform"])
    dropout: FloatRange = _float_range(0.2, 0.0, 0.5)
    batchnorm: Choice[bool] = _choice(True, [True, False])
    l1: Choice[float] = _choice(0.0, [0.0])
    l2: Choice[float] = _choice(0.0, [0.0, 1e-4])


class FamilySpace(_Strict):
    """A family's own hyperparameters. `depth` and `widths` name what underfitting grows."""

    depth: ClassVar[str]
    widths: ClassVar[tuple[str, ...]]


class MLPSpace(FamilySpace):
    """Dense stack: `layers` layers, the first `units` wide, each next one half as wide."""

    depth: ClassVar[str] = "layers"
    widths: ClassVar[tuple[str, ...]] = ("units",)
    layers: IntRange = _int_range(2, 1, 3)
    units: Choice[int] = _choice(128, [64, 128, 256])


class CNNSpace(FamilySpace):
    """VGG-style: `blocks` blocks of `convs_per_block` k x k convolutions + 2x2 pooling, filters doubling."""

    depth: ClassVar[str] = "blocks"
    widths: ClassVar[tuple[str, ...]] = ("filters", "dense_units")
    blocks: IntRange = _int_range(2, 1, 3)
    filters: Choice[int] = _choice(32, [16, 32, 64])
    convs_per_block: Choice[int] = _choice(2, [1, 2])
    kernel_size: Choice[int] = _choice(3, [3, 5])
    pooling: Choice[Literal["max", "avg"]] = _choice("max", ["max", "avg"])
    dense_units: Choice[int] = _choice(128, [64, 128])


class ResNetSpace(FamilySpace):
    """Residual stages; each after the first halves the spatial size and doubles the filters."""

    depth: ClassVar[str] = "stages"
    widths: ClassVar[tuple[str, ...]] = ("filters",)
    stages: IntRange = _int_range(2, 1, 3)
    blocks_per_stage: Choice[int] = _choice(1, [1, 2])
    filters: Choice[int] = _choice(32, [16, 32, 64])
    kernel_size: Choice[int] = _choice(3, [3])
    pooling: Choice[Literal["max", "avg"]] = _choice("avg", ["avg", "max"])  # global pooling at the end


class InceptionSpace(FamilySpace):
    """Inception modules (1x1, 1x1->3x3, 1x1->5x5, pool->1x1 branches), 2x2 pooling between them."""

    depth: ClassVar[str] = "blocks"
    widths: ClassVar[tuple[str, ...]] = ("filters",)
    blocks: IntRange = _int_range(2, 1, 3)
    filters: Choice[int] = _choice(16, [8, 16, 32])  # per branch; the 1x1 reductions use half
    pooling: Choice[Literal["max", "avg"]] = _choice("max", ["max", "avg"])


class RNNSpace(FamilySpace):
    """Recurrent layers over the time axis (image rows for images); cells keep their tanh."""

    depth: ClassVar[str] = "layers"
    widths: ClassVar[tuple[str, ...]] = ("units",)
    cell: Choice[Literal["lstm", "gru", "simple"]] = _choice("lstm", ["lstm", "gru"])
    layers: IntRange = _int_range(1, 1, 2)
    units: Choice[int] = _choice(64, [32, 64, 128])
    bidirectional: Choice[bool] = _choice(False, [False, True])


class TransformerSpace(FamilySpace):
    """Encoder blocks over tokens: sequence steps, image rows, or one token per table column."""

    depth: ClassVar[str] = "blocks"
    widths: ClassVar[tuple[str, ...]] = ("embed_dim", "ff_units")
    blocks: IntRange = _int_range(2, 1, 3)
    embed_dim: Choice[int] = _choice(64, [32, 64])
    heads: Choice[int] = _choice(4, [2, 4])
    ff_units: Choice[int] = _choice(128, [64, 128, 256])


FAMILY_SPACES: dict[str, type[FamilySpace]] = {
    "mlp": MLPSpace, "cnn": CNNSpace, "resnet": ResNetSpace, "inception": InceptionSpace,
    "rnn": RNNSpace, "transformer": TransformerSpace,
}


class ModelConfig(_Strict):
    """The design space, family by family; every value's `default` together is the initial design.

    `family` is the initial design's family (`auto`: the first that fits the input kind);
    `families` the ones the redesign search may try (null: the defaults for the input kind).
    """

    family: Literal["auto", "mlp", "cnn", "resnet", "inception", "rnn", "transformer"] = "auto"
    families: list[Family] | None = None
    common: CommonSpace = Field(default_factory=CommonSpace)
    mlp: MLPSpace = Field(default_factory=MLPSpace)
    cnn: CNNSpace = Field(default_factory=CNNSpace)
    resnet: ResNetSpace = Field(default_factory=ResNetSpace)
    inception: InceptionSpace = Field(default_factory=InceptionSpace)
    rnn: RNNSpace = Field(default_factory=RNNSpace)
    transformer: TransformerSpace = Field(default_factory=TransformerSpace)


class TrainingSpace(_Strict):
    """Training choices the search may vary."""

    optimizer: Choice[Optimizer] = _choice("adam", ["adam", "sgd"])
    learning_rate: FloatRange = _float_range(1e-3, 3e-4, 1e-2, log=True)
    # plateau: constant rate divided by 5 after `early_stopping_patience // 2` epochs without progress
    lr_schedule: Choice[Literal["constant", "cosine", "exponential", "plateau"]] = _choice("cosine", ["cosine"])
    batch_size: Choice[int] = _choice(32, [32, 64])


class TrainConfig(TrainingSpace):
    epochs: int = Field(40, ge=1)
    early_stopping_patience: int = Field(8, ge=1)
    # loss: validation loss (keeps improving after a small validation split's accuracy saturates);
    # goal: the goal metric on validation. The best epoch's weights are restored either way.
    early_stopping_monitor: Literal["loss", "goal"] = "loss"
    seed: int = 42
    verbose: int = Field(2, ge=0, le=2)

    def space(self) -> TrainingSpace:
        return TrainingSpace(**{name: getattr(self, name) for name in TrainingSpace.model_fields})


class AugmentConfig(_Strict):
    """Training-only augmentation, as Keras layers inside the model (inactive at validation,
    test and prediction time). `enabled` may be searched; the overfitting diagnosis turns it on.

    Images: rotation (fraction of a full turn), translation, zoom and crop (fractions of the
    size; a crop is resized back), flips, brightness/contrast (need pixels scaled to [0, 1]).
    Sequences and tables: Gaussian `noise` (standard deviations, after standardisation).
    Text: `word_dropout`, the share of words masked out.
    """

    enabled: Choice[bool] = _choice(False, [False, True])
    rotation: float = Field(0.05, ge=0.0, le=0.5)
    translation: float = Field(0.1, ge=0.0, lt=1.0)
    zoom: float = Field(0.1, ge=0.0, lt=1.0)
    crop: float = Field(0.0, ge=0.0, lt=1.0)
    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    brightness: float = Field(0.0, ge=0.0, le=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)
    noise: float = Field(0.0, ge=0.0, le=2.0)
    word_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    def available_for(self, input_kind: str) -> bool:
        """Whether any augmentation is configured that applies to this input kind."""
        if input_kind == "image":
            return True
        return bool(self.word_dropout if input_kind == "text" else self.noise)


class DiagnosisConfig(_Strict):
    """When a round's learning curves count as overfitting, stalled or diverged."""

    overfit_gap: float = Field(0.05, gt=0.0)  # train - validation goal metric (relative for rmse/mae)
    stall_epochs: int = Field(3, ge=2)  # epochs to wait before calling a run stalled
    stall_min_improvement: float = Field(0.01, ge=0.0)  # relative drop of val_loss that counts
    diverge_factor: float = Field(10.0, gt=1.0)  # loss growing this much above its first value
    failed_share: float = Field(0.5, gt=0.0, le=1.0)  # share of failed trials that means divergence


class SearchConfig(_Strict):
    """The redesign search, run only when the trained design misses the goal on validation.

    Each round searches cheaply on `subset_fraction` of the training data, trains its `top_k`
    designs on all of it, diagnoses their learning curves and reshapes the next round's space.
    """

    tuner: Literal["hyperband", "random", "bayesian", "grid"] = "hyperband"
    max_trials: int = Field(30, ge=1)  # over all rounds
    time_budget_s: float = Field(300.0, gt=0)
    stop_on_goal: bool = True
    # Validation must pass the threshold by this much before the loop calls the goal met: a small
    # validation split makes the best of many designs look better than it is. `auto`: for
    # accuracy/balanced_accuracy, 1.645 standard errors of a rate at the threshold on the
    # validation split (one-sided 95%); 0 for the other metrics.
    goal_margin: float | Literal["auto"] = "auto"
    seed: int = 42
    rounds: int = Field(3, ge=1)
    subset_fraction: float = Field(0.25, gt=0.0, le=1.0)
    trials_per_round: int = Field(10, ge=1)
    max_epochs: int = Field(20, ge=1)  # per subset trial (hyperband: the most one trial gets)
    hyperband_factor: int = Field(3, ge=2)
    top_k: int = Field(2, ge=1)
    ensemble: bool = True  # also try the average of the best designs; it wins only if better on validation
    ensemble_size: int = Field(3, ge=2)
    # true: a rerun of the same search (after Ctrl-C or a kill) goes on where it stopped
    resume: bool = True
    diagnosis: DiagnosisConfig = Field(default_factory=DiagnosisConfig)


class TrackingConfig(_Strict):
    """MLflow. `uri: null` means sqlite:///mlflow.db at the repo root (MLFLOW_TRACKING_URI wins)."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "automl-pipeline"
    # The export stage logs the model (raw rows in, predictions out) and registers it under this
    # name; null: "automl-<data.source>". Alias `champion` only when the goal is met.
    register_model: bool = True
    model_name: str | None = None

    @model_validator(mode="after")
    def _model_name_fits_uri(self) -> TrackingConfig:
        if self.model_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name):
            raise _KeyError("tracking.model_name", self.model_name,
                            "letters, digits, '_', '.', '-' (the name goes into models:/ URIs)")
        return self


class PipelineConfig(_Strict):
    goal: GoalConfig
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        builtin = BUILTIN_SOURCES.get(self.data.source)
        if builtin and builtin["task"] != self.goal.task:
            raise _KeyError(
                "goal.task", self.goal.task, f"data '{self.data.source}' is a {builtin['task']} task"
            )
        data = self.data
        if data.source in TABLE_SOURCES:
            multi_target = isinstance(data.target, list) and len(data.target) > 1
            if multi_target != (self.goal.task == "multilabel"):
                raise _KeyError(
                    "data.target", data.target,
                    "one column for binary/multiclass/regression, a list of 0/1 columns for multilabel",
                )
        if data.window is not None and self.goal.task != "regression":
            raise _KeyError("goal.task", self.goal.task, "forecasting windows predict a value: regression")
        method = self.split.method
        if method == "group" and not data.group_column:
            raise _KeyError("split.method", method, "group needs data.group_column (rows sharing it stay together)")
        if method == "time" and not data.time_column:
            raise _KeyError("split.method", method, "time needs data.time_column")
        if method == "stratified" and self.goal.task not in ("binary", "multiclass"):
            raise _KeyError("split.method", method, f"stratified needs classes; goal.task is {self.goal.task}")
        if data.window is not None and method not in ("auto", "time"):
            raise _KeyError("split.method", method, "forecasting windows are split in time order: auto or time")
        applicable = FAMILIES_BY_INPUT[self.data.input_kind]
        if self.model.family not in ("auto", *applicable):
            raise _KeyError(
                "model.family", self.model.family,
                f"allowed for {self.data.input_kind} input: auto, {', '.join(applicable)}",
            )
        for family in self.model.families or ():
            if family not in applicable:
                raise _KeyError(
                    "model.families", family,
                    f"allowed for {self.data.input_kind} input: {', '.join(applicable)}",
                )
        return self

    @property
    def family(self) -> str:
        """The initial design's family, with `auto` resolved from the input kind."""
        if self.model.family != "auto":
            return self.model.family
        return FAMILIES_BY_INPUT[self.data.input_kind][0]

    @property
    def search_families(self) -> list[str]:
        """The families the redesign search may try (the initial one always among them)."""
        families = list(self.model.families or SEARCHED_BY_INPUT[self.data.input_kind])
        return families if self.family in families else [self.family, *families]


class _KeyError(ValueError):
    """Raised inside validators to name the offending key precisely."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"`{key}`: got {value!r}; {allowed}")
        self.message = str(self)


def _allowed_keys(model_cls: type[BaseModel], path: tuple) -> list[str]:
    """Field names of the model reached by following `path` from `model_cls`."""
    current: Any = model_cls
    for part in path:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *get_args(annotation)]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(current.model_fields)


def _describe(error: dict) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = ".".join(str(p) for p in loc)
    kind = error["type"]
    if kind == "value_error" and isinstance(error.get("ctx", {}).get("error"), _KeyError):
        return error["ctx"]["error"].message
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(PipelineConfig, loc[:-1]))
        return f"`{key}`: unknown key; allowed keys: {allowed}"
    if kind == "missing":
        return f"`{key}`: missing; this key is required"
    if kind == "literal_error":
        return f"`{key}`: got {error['input']!r}; allowed: {error['ctx']['expected']}"
    message = error["msg"].removeprefix("Value error, ")
    return f"`{key}`: got {error['input']!r}; {message[0].lower()}{message[1:]}"


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def validate_config(raw: dict) -> PipelineConfig:
    """Validate a composed config dict, raising ConfigError that lists every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}")
    unset = [key for key, value in _leaves(raw) if value == "???"]
    if unset:
        raise ConfigError("invalid config:\n  " + "\n  ".join(
            f"`{key}`: missing; this key is required (e.g. -S {key}=...)" for key in unset))
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(lines))) from None


def load_config(params_path: str | Path = "params.yaml") -> PipelineConfig:
    """Read params.yaml (composed from conf/ by DVC or by `python -m pipeline`) and validate it."""
    path = Path(params_path)
    if not path.exists():
        raise ConfigError(f"config: {path} not found; run from the repo root or compose it first")
    return validate_config(yaml.safe_load(path.read_text()) or {})


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
        groups = sorted(p.name for p in conf_dir.iterdir() if p.is_dir())
        choices = {g: sorted(f.stem for f in (conf_dir / g).glob("*.yaml")) for g in groups}
        allowed = "; ".join(f"{g}: {', '.join(c)}" for g, c in choices.items())
        raise ConfigError(f"config override rejected: {exc}\n  config groups and choices: {allowed}") from None
    return OmegaConf.to_container(cfg, resolve=True)


def write_params(params: dict, path: str | Path = "params.yaml") -> None:
    Path(path).write_text(yaml.safe_dump(params, sort_keys=False))
