"""The config sections (one pydantic model each) and the whole :class:`PipelineConfig`.

The model section is built from the family registry (pipeline/models/families/): each family
contributes its own sub-section, so a new family needs no edit here.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field, create_model, model_validator

from pipeline.config.errors import KeyProblem
from pipeline.config.space import (
    BatchSize,
    Choice,
    FamilySpace,
    FloatRange,
    LabelSmoothing,
    Strict,
    choice,
    defaults,
    float_range,
)
from pipeline.config.splits import AutoSplit, SplitConfig, SplitSettings
from pipeline.models import registry
from pipeline.objective import Objective, metric_info
from pipeline.tasks import TASKS, Task, task_named

InputKind = Literal["image", "sequence", "tabular", "text"]
Activation = Literal["relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid"]
Initializer = Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal"]
Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]

# Built-in sources: what they hold, so that a mismatch is caught before loading anything.
BUILTIN_SOURCES: dict[str, dict[str, str]] = {
    "digits": {"task": "multiclass", "input": "image"},
    "breast_cancer": {"task": "binary", "input": "tabular"},
    "wine": {"task": "multiclass", "input": "tabular"},
    "diabetes": {"task": "regression", "input": "tabular"},
}
TABLE_SOURCES = ("csv", "parquet")
FILE_SOURCES = (*TABLE_SOURCES, "npz", "images")


class GoalConfig(Strict):
    """What success means: the task, a metric on held-out data and its threshold."""

    task: Literal[tuple(TASKS)]
    metric: str
    threshold: float
    fail_on_miss: bool = False

    @property
    def objective(self) -> Objective:
        return Objective(self.metric, self.threshold)

    @property
    def kind(self) -> Task:
        return task_named(self.task)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> GoalConfig:
        allowed = self.kind.goal_metrics
        if self.metric not in allowed:
            raise KeyProblem("goal.metric", self.metric, f"allowed for {self.task}: {', '.join(allowed)}")
        info = metric_info(self.metric)
        if (info.low is not None and self.threshold < info.low) or (info.high is not None and self.threshold > info.high):
            raise KeyProblem("goal.threshold", self.threshold, f"allowed for {self.metric}: {info.threshold_range()}")
        return self


ColumnKind = Literal["numeric", "categorical", "text", "image"]
MissingStrategy = Literal["mean", "median", "zero", "most_frequent", "missing_category", "empty", "error"]


class TextConfig(Strict):
    """Text columns, fitted on the training split: as a bag of word n-grams weighted by TF-IDF
    (`ngrams`), or as a sequence of word ids (`sequence`). `auto` follows Google's text
    classification guide: n-grams when the number of texts / median words per text is below 1500."""

    representation: Literal["auto", "ngrams", "sequence"] = "auto"
    ngrams: int = Field(2, ge=1, le=3)  # ngrams: words, and runs of up to this many words
    vocabulary_size: int = Field(20000, ge=3)  # the most frequent words or n-grams kept
    # sequence: word ids per text; ngrams: distinct n-grams kept per text (the highest TF-IDF first)
    sequence_length: int = Field(128, ge=1)
    embed_dim: int = Field(64, ge=2)  # word embedding size (sequence); the bag's projection width (ngrams)


class ImageConfig(Strict):
    """How image files become model inputs; every image ends up `size` with `color` channels."""

    size: list[int] | None = Field(None, min_length=2, max_length=2)  # [height, width]; null: the images' own
    color: Literal["rgb", "grayscale"] = "rgb"
    mode: Literal["resize", "pad", "none"] = "resize"  # pad: to square with `fill`, then resize; none: sizes must match
    fill: Literal["black", "white", "noise"] = "black"
    scaling: Literal["unit", "symmetric"] = "unit"  # pixel values 0..1 or -1..1 inside the model
    root: str | None = None  # image paths in a table must lie under this folder; null: the table's folder

    @model_validator(mode="after")
    def _positive(self) -> ImageConfig:
        if self.size is not None and min(self.size) < 1:
            raise KeyProblem("data.image.size", self.size, "two positive integers [height, width], or null")
        return self


class WindowConfig(Strict):
    """Forecasting over a time-ordered table: `length` past rows predict the target `horizon` rows ahead."""

    length: int = Field(ge=2)
    horizon: int = Field(1, ge=1)


class DataConfig(Strict):
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
    input: InputKind | None = None
    columns: dict[str, ColumnKind] = Field(default_factory=dict)
    missing: dict[str, MissingStrategy] = Field(default_factory=dict)
    categorical_encoding: Literal["auto", "one_hot", "embedding"] = "auto"  # auto: one-hot up to 16 categories
    text: TextConfig = Field(default_factory=TextConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    labels: str | None = None
    steps: int | None = Field(None, ge=2)
    window: WindowConfig | None = None
    time_column: str | None = None
    validation_path: str | None = None
    test_path: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, value):
        # conf/ writes `columns: null` so that `-S 'data.columns={city: categorical}'` can replace it
        if isinstance(value, dict):
            return {**value, **{k: {} for k in ("columns", "missing") if value.get(k, {}) is None}}
        return value

    @model_validator(mode="after")
    def _files_need_what_they_hold(self) -> DataConfig:
        if self.source in FILE_SOURCES and not self.path:
            raise KeyProblem("data.path", self.path, f"a path is required when data.source is {self.source}")
        if self.source in TABLE_SOURCES and not self.target:
            raise KeyProblem("data.target", self.target, f"a column name (or a list) is required for {self.source}")
        if self.source == "npz" and not self.input:
            raise KeyProblem("data.input", self.input, "required for npz: image (n, H, W, C), "
                             "sequence (n, steps, features) or tabular (n, features)")
        if self.source in BUILTIN_SOURCES and self.input not in (None, BUILTIN_SOURCES[self.source]["input"]):
            raise KeyProblem("data.input", self.input,
                             f"data '{self.source}' is {BUILTIN_SOURCES[self.source]['input']} input")
        if self.source == "images" and self.input not in (None, "image"):
            raise KeyProblem("data.input", self.input, "an image folder is image input")
        if self.source == "npz" and self.input == "text":
            raise KeyProblem("data.input", self.input, "npz holds image, sequence or tabular arrays")
        if self.window is not None and (self.source not in TABLE_SOURCES or not self.time_column):
            raise KeyProblem("data.window", self.window.model_dump(),
                             "forecasting windows need a csv/parquet table and data.time_column")
        if (self.steps or self.window) and self.input not in (None, "sequence"):
            raise KeyProblem("data.input", self.input, "data.steps and data.window make sequence input")
        unsupported = [k for k in ("validation_path", "test_path") if getattr(self, k) and self.source not in FILE_SOURCES]
        if unsupported:
            raise KeyProblem(f"data.{unsupported[0]}", getattr(self, unsupported[0]),
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


class CommonSpace(Strict):
    """Layer choices every family shares."""

    activation: Choice[Activation] = choice("relu", ["relu", "gelu"])
    initializer: Choice[Initializer] = choice("he_normal", ["he_normal", "glorot_uniform"])
    dropout: FloatRange = float_range(0.2, 0.0, 0.5)
    batchnorm: Choice[bool] = choice(True, [True, False])
    l1: Choice[float] = choice(0.0, [0.0])
    l2: Choice[float] = choice(0.0, [0.0, 1e-4])
    # table numbers: standardised, plus (piecewise) their place within quantile bins of the training values
    numeric_encoding: Choice[Literal["piecewise", "standardize"]] = choice("piecewise", ["piecewise", "standardize"])
    # images, classes: at inference, average the outputs over the image and its left-right flip
    # (flip), and over a 90% central crop of both (flip_and_crop); inside the exported model
    test_time_augmentation: Choice[Literal["none", "flip", "flip_and_crop"]] = choice("none", ["none"])

    @model_validator(mode="after")
    def _bounds(self) -> CommonSpace:
        if not self.dropout.within(0.0, 1.0, high_open=True):
            raise KeyProblem("model.common.dropout", self.dropout.model_dump(), "rates in [0, 1): the share of "
                             "units dropped in training")
        for name in ("l1", "l2"):
            if min(getattr(self, name).choices) < 0:
                raise KeyProblem(f"model.common.{name}", getattr(self, name).choices, "penalties of 0 or more")
        return self


class ModelSettings(Strict):
    """Shared by the model section that the family registry completes (see :data:`ModelConfig`)."""

    def family_space(self, family: str) -> FamilySpace:
        return getattr(self, family)


def _model_config() -> type[ModelSettings]:
    """The model section: `family`, `families`, `common`, and one sub-section per registered family."""
    names = tuple(f.name for f in registry.ordered())
    fields = {
        # the initial design's family; auto: the one the registry names for the input kind
        "family": (Literal[("auto", *names)], "auto"),
        # the families the redesign search may try; null: those the registry names for the input kind
        "families": (list[Literal[names]] | None, None),
        "common": (CommonSpace, Field(default_factory=CommonSpace)),
        **{family.name: (family.space, Field(default_factory=family.space)) for family in registry.ordered()},
    }
    return create_model("ModelConfig", __base__=ModelSettings, __doc__="The design space, family by family; "
                        "every value's `default` together is the initial design.", **fields)


ModelConfig = _model_config()


class TrainingSpace(Strict):
    """Training choices the search may vary."""

    optimizer: Choice[Optimizer] = choice("adam", ["adam", "sgd"])
    learning_rate: FloatRange = float_range(1e-3, 3e-4, 1e-2, log=True)
    # plateau: constant rate divided by 5 after `early_stopping_patience // 2` epochs without progress
    lr_schedule: Choice[Literal["constant", "cosine", "exponential", "plateau"]] = choice("cosine", ["cosine"])
    batch_size: BatchSize = choice("auto", [32, 64, 128, 256])  # auto: about 150 steps an epoch
    # classes: the training targets pulled toward uniform by this share (0: none); auto: the task's
    # share for the goal metric (Task.auto_label_smoothing), searched beside the choices
    label_smoothing: LabelSmoothing = choice("auto", [0.0])

    @model_validator(mode="after")
    def _positive_rate(self) -> TrainingSpace:
        if not self.learning_rate.within(0.0, math.inf, low_open=True):
            raise KeyProblem("train.learning_rate", self.learning_rate.model_dump(), "learning rates must be above 0")
        if not all(0.0 <= s < 0.5 for s in self.label_smoothing.choices):
            raise KeyProblem("train.label_smoothing", self.label_smoothing.choices, "shares in [0, 0.5)")
        return self


class TrainConfig(TrainingSpace):
    epochs: int = Field(40, ge=1)
    # the initial design's training stops cleanly (best epoch kept) after this many seconds
    time_budget_s: float = Field(70.0, gt=0)
    # regression: model the target standardised, on the log scale when every target is positive
    # and skewed (auto), or not (none), or always (log)
    target_transform: Literal["auto", "none", "log"] = "auto"
    # once chosen, train the design again on train + validation for the epochs its run kept
    refit: bool = True
    # the refit trains this many copies of a chosen single design (seeds seed, seed + 1, ...) and
    # exports their average; fewer when they would not fit in what is left of search.time_budget_s,
    # or in half of it after a search
    refit_copies: int = Field(3, ge=1, le=16)
    early_stopping_patience: int = Field(8, ge=1)
    # loss: validation loss (keeps improving after a small validation split's accuracy saturates);
    # goal: the goal metric on validation. The best epoch's weights are restored either way.
    early_stopping_monitor: Literal["loss", "goal"] = "loss"
    seed: int = 42
    verbose: int = Field(2, ge=0, le=2)  # display only: no stage reruns when it changes

    def space(self) -> TrainingSpace:
        return TrainingSpace(**{name: getattr(self, name) for name in TrainingSpace.model_fields})


class AugmentConfig(Strict):
    """Training-only augmentation, as Keras layers inside the model (inactive at validation,
    test and prediction time). `enabled` may be searched; the overfitting diagnosis turns it on.

    Images: rotation (fraction of a full turn), translation, zoom and crop (fractions of the
    size; a crop is resized back), flips, brightness/contrast (need pixels scaled to [0, 1]).
    Sequences and tables: Gaussian `noise` (standard deviations, after standardisation).
    Text: `word_dropout`, the share of words masked out.
    """

    enabled: Choice[bool] = choice(False, [False, True])
    rotation: float = Field(0.05, ge=0.0, le=0.5)
    translation: float = Field(0.1, ge=0.0, lt=1.0)
    zoom: float = Field(0.1, ge=0.0, lt=1.0)
    crop: float = Field(0.0, ge=0.0, lt=1.0)
    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    brightness: float = Field(0.0, ge=0.0, le=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)
    noise: float = Field(0.0, ge=0.0, le=1.0)  # Keras's GaussianNoise takes a stddev in [0, 1]
    word_dropout: float = Field(0.0, ge=0.0, lt=1.0)

    def available_for(self, body_kind: str) -> bool:
        """Whether any augmentation is configured that applies to what the body reads."""
        if body_kind == "image":
            return True
        if body_kind == "ngrams":  # word dropout acts on word ids, not on a bag
            return False
        return bool(self.word_dropout if body_kind == "text" else self.noise)

    def settings(self, seed: int) -> dict:
        """The transforms' strengths, as the model builder reads them."""
        return {**self.model_dump(exclude={"enabled"}), "seed": seed}


class DiagnosisConfig(Strict):
    """When a round's learning curves count as overfitting, stalled or diverged."""

    overfit_gap: float = Field(0.05, gt=0.0)  # train ahead of validation on the goal metric (relative for errors)
    stall_epochs: int = Field(3, ge=2)  # epochs to wait before calling a run stalled
    stall_min_improvement: float = Field(0.01, ge=0.0)  # relative drop of val_loss that counts
    diverge_factor: float = Field(10.0, gt=1.0)  # loss growing this much above its first value
    failed_share: float = Field(0.5, gt=0.0, le=1.0)  # share of failed trials that means divergence


class SearchConfig(Strict):
    """The redesign search, run only when the trained design misses the goal on validation.

    Each round searches cheaply on `subset_fraction` of the training data, trains its `top_k`
    designs on all of it, diagnoses their learning curves and reshapes the next round's space.
    """

    tuner: Literal["hyperband", "random", "bayesian", "grid"] = "random"
    max_trials: int = Field(16, ge=1)  # over all rounds
    time_budget_s: float = Field(140.0, gt=0)  # the search and the refit after it
    stop_on_goal: bool = True
    # Validation must pass the threshold by this much before the loop calls the goal met: a small
    # validation split makes the best of many designs look better than it is. `auto`: for
    # accuracy/balanced_accuracy, 1.645 standard errors of a rate at the threshold on the
    # validation split (one-sided 95%); 0 for the other metrics.
    goal_margin: Annotated[float, Field(ge=0.0)] | Literal["auto"] = "auto"
    seed: int = 42
    rounds: int = Field(2, ge=1)
    subset_fraction: float = Field(0.5, gt=0.0, le=1.0)
    trials_per_round: int = Field(8, ge=1)
    max_epochs: int = Field(20, ge=1)  # per subset trial (hyperband: the most one trial gets)
    hyperband_factor: int = Field(3, ge=2)
    top_k: int = Field(2, ge=1)
    ensemble: bool = True  # also try the average of the best designs; it wins only if better on validation
    ensemble_size: int = Field(3, ge=2)
    # Tables of numbers and categories: gradient-boosted trees (scikit-learn, converted into Keras
    # layers) and their average with the chosen network compete with it on validation.
    boosted_trees: bool = True
    # Tables of numbers and categories: a regularised linear model (logistic or ridge regression, its
    # strength chosen by cross-validation, converted into Keras layers) competes with the network on validation too.
    linear_model: bool = True
    # When the search chose another design than the trained initial one: both cross-validated on this
    # many shuffled folds of train + validation, and the fold scores decide between them (0: off; only
    # where the rows are exchangeable, not a group or time split, and the fits end within the budget).
    finalist_folds: int = Field(3, ge=0, le=10)
    # true: a rerun of the same search (after Ctrl-C or a kill) goes on where it stopped
    resume: bool = True
    # Subset trials in parallel: 1 runs them in this process; N >= 2 starts N local worker processes
    # (one GPU each, or a share of the CPU cores) fed by KerasTuner's distributed oracle, served by
    # the redesign stage on `oracle_host` (0.0.0.0 lets workers on other machines join: README).
    workers: int = Field(1, ge=1, le=64)
    oracle_host: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9._:-]+$")  # a host name or an IP address
    diagnosis: DiagnosisConfig = Field(default_factory=DiagnosisConfig)

    @model_validator(mode="after")
    def _folds_leave_rows_out(self) -> SearchConfig:
        if self.finalist_folds == 1:
            raise KeyProblem("search.finalist_folds", 1,
                             "0 (off) or 2 to 10 folds (one fold leaves no rows to score on)")
        return self


class TrackingConfig(Strict):
    """MLflow. `uri: null` means sqlite:///mlflow.db at the repo root (MLFLOW_TRACKING_URI wins)."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "automl-pipeline"
    # The export stage logs the model (raw rows in, predictions out) and registers it under this
    # name; null: "automl-<data.source>". Alias `champion` only when the goal is met.
    register_model: bool = True
    model_name: str | None = None
    # CPU, memory (and GPU where MLflow can read it) sampled every 5 s into the pipeline's run
    system_metrics: bool = True

    URI_SCHEMES: ClassVar[tuple[str, ...]] = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql",
                                              "databricks")

    @model_validator(mode="after")
    def _model_name_fits_uri(self) -> TrackingConfig:
        if self.uri is not None and self.uri.split(":", 1)[0].split("+", 1)[0] not in self.URI_SCHEMES:
            raise KeyProblem("tracking.uri", self.uri, f"an MLflow tracking URI ({', '.join(self.URI_SCHEMES)}), "
                             "e.g. sqlite:///mlflow.db or http://mlflow-server:5000")
        if self.model_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.model_name):
            raise KeyProblem("tracking.model_name", self.model_name,
                             "letters, digits, '_', '.', '-' (the name goes into models:/ URIs)")
        return self


class ComputeConfig(Strict):
    """Where and how models train (see pipeline/compute.py)."""

    # auto: every local accelerator, else one CPU; cpu; all: every device Keras sees (CPU ones
    # too); or a list of indices into that list. More than one: data parallel (JAX backend).
    devices: Literal["auto", "cpu", "all"] | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = "auto"
    # auto: mixed_float16 on GPUs with compute capability 7.0+, mixed_bfloat16 on TPUs, else float32
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: Literal["auto"] | bool = "auto"  # XLA compilation of the train step (auto: Keras decides)


class PipelineConfig(Strict):
    goal: GoalConfig
    data: DataConfig
    split: SplitConfig = Field(default_factory=AutoSplit)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)

    @property
    def task(self) -> Task:
        return self.goal.kind

    @property
    def objective(self) -> Objective:
        return self.goal.objective

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        data, task = self.data, self.task
        builtin = BUILTIN_SOURCES.get(data.source)
        if builtin and builtin["task"] != task.name:
            raise KeyProblem("goal.task", task.name, f"data '{data.source}' is a {builtin['task']} task")
        if data.source in TABLE_SOURCES:
            multi_target = isinstance(data.target, list) and len(data.target) > 1
            if multi_target != task.multi_target:
                raise KeyProblem("data.target", data.target,
                                 "one column for binary/multiclass/regression, a list of 0/1 columns for multilabel")
        if data.window is not None and not task.predicts_value:
            raise KeyProblem("goal.task", task.name, "forecasting windows predict a value: regression")
        self.split.check(task, data)
        if any(self.train.label_smoothing.choices) and not task.smooths_labels:
            raise KeyProblem("train.label_smoothing", self.train.label_smoothing.choices,
                             f"0 for {task.name}: smoothing applies to class labels")
        tta = [c for c in self.model.common.test_time_augmentation.choices if c != "none"]
        if tta and (data.input_kind != "image" or task.predicts_value):
            raise KeyProblem("model.common.test_time_augmentation", tta,
                             "none unless the input is images and the task predicts classes")
        applicable = sorted({f for kind in self.body_kinds() for f in registry.reading(kind)})
        if self.model.family not in ("auto", *applicable):
            raise KeyProblem("model.family", self.model.family,
                             f"allowed for {data.input_kind} input: auto, {', '.join(applicable)}")
        for family in self.model.families or ():
            if family not in applicable:
                raise KeyProblem("model.families", family,
                                 f"allowed for {data.input_kind} input: {', '.join(applicable)}")
        return self

    def body_kinds(self) -> tuple[str, ...]:
        """What a family body may read for this data: text is read as word ids or as an n-gram bag
        (`auto`: decided by the data in `prepare`; the schema's `body_kind` says which)."""
        kind = self.data.input_kind
        if kind != "text":
            return (kind,)
        chosen = self.data.text.representation
        return ("ngrams", "text") if chosen == "auto" else ("ngrams" if chosen == "ngrams" else "text",)

    def initial_family(self, body_kind: str | None = None) -> str:
        """The initial design's family, with `auto` resolved for what the body reads."""
        if self.model.family != "auto":
            return self.model.family
        return registry.initial_for(body_kind or self.body_kinds()[0])

    def search_families_for(self, body_kind: str | None = None) -> list[str]:
        """The families the redesign search may try (the initial one always among them)."""
        body_kind = body_kind or self.body_kinds()[0]
        initial = self.initial_family(body_kind)
        families = list(self.model.families or registry.searched_for(body_kind))
        return families if initial in families else [initial, *families]

    @property
    def family(self) -> str:
        return self.initial_family()

    @property
    def search_families(self) -> list[str]:
        return self.search_families_for()

    @property
    def split_kind(self) -> SplitSettings:
        """The split kind that assigns the rows (auto resolved for this task and data)."""
        return self.split.concrete(self.task, windows=self.data.window is not None)

    def training_space(self) -> TrainingSpace:
        """The training choices with `auto` label smoothing resolved for the task and goal metric."""
        space = self.train.space()
        smoothing = space.label_smoothing.resolved(self.task.auto_label_smoothing(self.goal.metric))
        return space.model_copy(update={"label_smoothing": smoothing})

    def initial_values(self, body_kind: str | None = None) -> dict:
        """The initial design's hyperparameters: every default of its family, shared and training choices."""
        body_kind = body_kind or self.body_kinds()[0]
        return {**defaults(self.model.common), **defaults(self.training_space()),
                **defaults(self.model.family_space(self.initial_family(body_kind))),
                "augment": bool(self.augment.enabled.default) and self.augment.available_for(body_kind)}

