"""The one validated schema for everything in conf/ (and so in params.yaml).

Every stage loads its settings through :func:`load_config`; a bad key or value fails here,
before any data is touched, with a message naming the key, the bad value and what is allowed:

    `goal.metric`: got 'acuracy'; allowed for multiclass: accuracy, balanced_accuracy, macro_f1, auc
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal["binary", "multiclass", "multilabel", "regression"]
Activation = Literal["relu", "leaky_relu", "gelu", "elu", "tanh", "sigmoid"]
Initializer = Literal["he_normal", "he_uniform", "glorot_uniform", "glorot_normal", "lecun_normal"]
Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Family = Literal["mlp", "cnn"]

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
FAMILIES_BY_INPUT: dict[str, tuple[str, ...]] = {
    "image": ("cnn", "mlp"),
    "tabular": ("mlp",),
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


class DataConfig(_Strict):
    """Where the data comes from. `csv` reads a table: a target column (or several: multilabel)."""

    source: Literal["digits", "breast_cancer", "wine", "diabetes", "csv"]
    path: str | None = None
    target: str | list[str] | None = None
    features: list[str] | None = None

    @model_validator(mode="after")
    def _csv_needs_path_and_target(self) -> DataConfig:
        if self.source == "csv":
            if not self.path:
                raise _KeyError("data.path", self.path, "a CSV file path is required when data.source is csv")
            if not self.target:
                raise _KeyError("data.target", self.target, "a column name (or a list) is required for csv")
        return self

    @property
    def input_kind(self) -> str:
        return BUILTIN_SOURCES.get(self.source, {}).get("input", "tabular")


class SplitConfig(_Strict):
    """Train/validation/test fractions; stratified for classification, always seeded."""

    validation: float = Field(0.15, gt=0.0, lt=0.5)
    test: float = Field(0.2, gt=0.0, lt=0.5)
    stratify: bool = True
    seed: int = 42


class MLPConfig(_Strict):
    units: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)
    activation: Activation = "relu"
    initializer: Initializer = "he_normal"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    batchnorm: bool = False
    l2: float = Field(0.0, ge=0.0)


class CNNConfig(_Strict):
    """VGG-style: blocks of `convs_per_block` 3x3 convolutions, each block closed by pooling."""

    filters: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    convs_per_block: int = Field(2, ge=1, le=4)
    kernel_size: int = Field(3, ge=1, le=7)
    pooling: Literal["max", "avg"] = "max"
    dense_units: int = Field(128, ge=1)
    activation: Activation = "relu"
    initializer: Initializer = "he_normal"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    batchnorm: bool = True
    l2: float = Field(0.0, ge=0.0)


class ModelConfig(_Strict):
    """The initial design. `auto` picks the family from the input kind (image: cnn, tabular: mlp)."""

    family: Literal["auto", "mlp", "cnn"] = "auto"
    mlp: MLPConfig = Field(default_factory=MLPConfig)
    cnn: CNNConfig = Field(default_factory=CNNConfig)


class TrainConfig(_Strict):
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    optimizer: Optimizer = "adam"
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    lr_schedule: Literal["constant", "cosine", "exponential"] = "constant"
    early_stopping_patience: int = Field(8, ge=1)
    seed: int = 42
    verbose: int = Field(2, ge=0, le=2)


class IntRange(_Strict):
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FloatRange(_Strict):
    min: float
    max: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.log and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        return self


class SearchSpace(_Strict):
    """The design space the redesign stage searches; the initial design is its first point."""

    families: list[Family] | None = None
    learning_rate: FloatRange = Field(default_factory=lambda: FloatRange(min=1e-4, max=1e-2, log=True))
    optimizer: list[Optimizer] = Field(default_factory=lambda: ["adam", "sgd"], min_length=1)
    batch_size: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    activation: list[Activation] = Field(default_factory=lambda: ["relu", "gelu"], min_length=1)
    dropout: FloatRange = Field(default_factory=lambda: FloatRange(min=0.0, max=0.5))
    batchnorm: list[bool] = Field(default_factory=lambda: [True, False], min_length=1)
    initializer: list[Initializer] = Field(default_factory=lambda: ["he_normal", "glorot_uniform"], min_length=1)
    l2: list[float] = Field(default_factory=lambda: [0.0, 1e-4], min_length=1)
    mlp_layers: IntRange = Field(default_factory=lambda: IntRange(min=1, max=3))
    mlp_units: list[int] = Field(default_factory=lambda: [64, 128, 256], min_length=1)
    cnn_blocks: IntRange = Field(default_factory=lambda: IntRange(min=1, max=2))
    cnn_filters: list[int] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    dense_units: list[int] = Field(default_factory=lambda: [64, 128], min_length=1)


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
    # Validation must pass the threshold by this much before the search calls the goal met:
    # a small validation split makes the best of many designs look better than it is.
    goal_margin: float = Field(0.0, ge=0.0)
    seed: int = 42
    rounds: int = Field(3, ge=1)
    subset_fraction: float = Field(0.25, gt=0.0, le=1.0)
    trials_per_round: int = Field(10, ge=1)
    max_epochs: int = Field(20, ge=1)  # per subset trial (hyperband: the most one trial gets)
    hyperband_factor: int = Field(3, ge=2)
    top_k: int = Field(2, ge=1)
    ensemble: bool = False
    diagnosis: DiagnosisConfig = Field(default_factory=DiagnosisConfig)
    space: SearchSpace = Field(default_factory=SearchSpace)


class TrackingConfig(_Strict):
    """MLflow. `uri: null` means sqlite:///mlflow.db at the repo root (MLFLOW_TRACKING_URI wins)."""

    enabled: bool = True
    uri: str | None = None
    experiment: str = "automl-pipeline"


class PipelineConfig(_Strict):
    goal: GoalConfig
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        builtin = BUILTIN_SOURCES.get(self.data.source)
        if builtin and builtin["task"] != self.goal.task:
            raise _KeyError(
                "goal.task", self.goal.task, f"data '{self.data.source}' is a {builtin['task']} task"
            )
        if self.data.source == "csv":
            multi_target = isinstance(self.data.target, list) and len(self.data.target) > 1
            if multi_target != (self.goal.task == "multilabel"):
                raise _KeyError(
                    "data.target", self.data.target,
                    "one column for binary/multiclass/regression, a list of 0/1 columns for multilabel",
                )
        applicable = FAMILIES_BY_INPUT[self.data.input_kind]
        if self.model.family not in ("auto", *applicable):
            raise _KeyError(
                "model.family", self.model.family,
                f"allowed for {self.data.input_kind} input: auto, {', '.join(applicable)}",
            )
        for family in self.search.space.families or ():
            if family not in applicable:
                raise _KeyError(
                    "search.space.families", family,
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
        return list(self.search.space.families or FAMILIES_BY_INPUT[self.data.input_kind])


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
