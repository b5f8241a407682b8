"""Typed, validated view of `params.yaml`: the single source of truth for every tunable.

Every section is a frozen dataclass. `load_params` refuses unknown keys (with a did-you-mean
suggestion), values of the wrong type and values out of range, naming the key in the error.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from segpipe.errors import ConfigError

EMBEDDED_DATASET = "synthetic_pets"


@dataclass(frozen=True)
class PathsConfig:
    prepared: str
    model: str
    backup: str
    live: str
    eval_metrics: str
    confusion: str
    class_iou: str
    image_iou: str
    training_curves: str
    predictions: str
    worst: str


@dataclass(frozen=True)
class EmbeddedConfig:
    train_examples: int
    test_examples: int
    min_side: int
    max_side: int
    seed: int

    def validate(self, key: str) -> None:
        _at_least(f"{key}.train_examples", self.train_examples, 2)
        _at_least(f"{key}.test_examples", self.test_examples, 1)
        _at_least(f"{key}.min_side", self.min_side, 16)
        _at_least(f"{key}.max_side", self.max_side, self.min_side)


@dataclass(frozen=True)
class FolderConfig:
    path: str
    layout: str
    class_names: tuple[str, ...]
    test_fraction: float

    def validate(self, key: str) -> None:
        _one_of(f"{key}.layout", self.layout, ("oxford", "masks"))
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ConfigError(f"{key}.class_names must name at least 2 distinct classes, got {list(self.class_names)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"{key}.test_fraction must be in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class DataConfig:
    source: str
    dataset: str
    tfds_data_dir: str
    manual_dir: str
    download_timeout: float
    folder: FolderConfig
    image_size: int
    val_fraction: float
    split_seed: int
    shard_size: int
    on_bad_example: str
    embedded: EmbeddedConfig

    @property
    def dataset_name(self) -> str:
        return self.dataset.split(":")[0]

    @property
    def dataset_version(self) -> str | None:
        return self.dataset.split(":")[1] if ":" in self.dataset else None

    def validate(self, key: str) -> None:
        _one_of(f"{key}.source", self.source, ("tfds", "folder"))
        if self.source == "tfds":
            known = known_datasets()
            if self.dataset_name not in known:
                raise ConfigError(
                    f"{key}.dataset names an unknown TFDS dataset {self.dataset_name!r}"
                    f"{_did_you_mean(self.dataset_name, known)}"
                )
        if not self.download_timeout > 0:
            raise ConfigError(f"{key}.download_timeout must be > 0, got {self.download_timeout}")
        self.folder.validate(f"{key}.folder")
        _one_of(f"{key}.on_bad_example", self.on_bad_example, ("error", "skip"))
        _at_least(f"{key}.image_size", self.image_size, 8)
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"{key}.val_fraction must be in (0, 1), got {self.val_fraction}")
        _at_least(f"{key}.shard_size", self.shard_size, 1)
        self.embedded.validate(f"{key}.embedded")


@dataclass(frozen=True)
class ModelConfig:
    depth: int
    base_filters: int
    batch_norm: bool
    batch_norm_momentum: float
    dropout: float

    def validate(self, key: str) -> None:
        _at_least(f"{key}.depth", self.depth, 1)
        _at_least(f"{key}.base_filters", self.base_filters, 1)
        if not 0.0 < self.batch_norm_momentum < 1.0:
            raise ConfigError(
                f"{key}.batch_norm_momentum must be in (0, 1), got {self.batch_norm_momentum}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{key}.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool
    min_scale: float
    jitter: float

    def validate(self, key: str) -> None:
        if not 0.0 < self.min_scale <= 1.0:
            raise ConfigError(f"{key}.min_scale must be in (0, 1], got {self.min_scale}")
        if not 0.0 <= self.jitter < 1.0:
            raise ConfigError(f"{key}.jitter must be in [0, 1), got {self.jitter}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str
    warmup_epochs: int
    loss: str
    early_stopping_patience: int
    augment: AugmentConfig
    seed: int
    deterministic: bool
    mixed_precision: bool
    jit_compile: bool
    distribute: str

    def validate(self, key: str) -> None:
        _at_least(f"{key}.epochs", self.epochs, 1)
        _at_least(f"{key}.batch_size", self.batch_size, 1)
        if not self.learning_rate > 0:
            raise ConfigError(f"{key}.learning_rate must be > 0, got {self.learning_rate}")
        _one_of(f"{key}.lr_schedule", self.lr_schedule, ("constant", "cosine"))
        _at_least(f"{key}.warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"{key}.warmup_epochs must be < {key}.epochs = {self.epochs}, got {self.warmup_epochs}")
        _one_of(f"{key}.loss", self.loss, ("cross_entropy", "cross_entropy_dice"))
        _at_least(f"{key}.early_stopping_patience", self.early_stopping_patience, 0)
        self.augment.validate(f"{key}.augment")
        _one_of(f"{key}.distribute", self.distribute, ("auto", "none", "mirrored"))


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int

    def validate(self, key: str) -> None:
        _at_least(f"{key}.batch_size", self.batch_size, 1)


@dataclass(frozen=True)
class VisualizeConfig:
    num_examples: int
    seed: int
    num_worst: int
    dpi: int

    def validate(self, key: str) -> None:
        _at_least(f"{key}.num_examples", self.num_examples, 1)
        _at_least(f"{key}.num_worst", self.num_worst, 1)
        _at_least(f"{key}.dpi", self.dpi, 20)


@dataclass(frozen=True)
class Params:
    paths: PathsConfig
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    visualize: VisualizeConfig

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            section = getattr(self, field.name)
            if hasattr(section, "validate"):
                section.validate(field.name)
        factor = 2**self.model.depth
        if self.data.image_size % factor:
            raise ConfigError(
                f"data.image_size must be divisible by 2**model.depth = {factor}, "
                f"got {self.data.image_size}"
            )


def known_datasets() -> list[str]:
    """Names of every TFDS dataset this installation can build, the embedded one included."""
    import tensorflow_datasets as tfds  # here, not at the top: only a TFDS source needs it

    return sorted(set(tfds.list_builders(with_community_datasets=False)) | {EMBEDDED_DATASET})


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read `path` with a safe YAML loader and return the validated params."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    params = params_from_dict(raw)
    params.validate()
    return params


def params_from_dict(raw: Any) -> Params:
    """Build `Params` from a plain mapping, checking keys and types but not ranges."""
    return _build(Params, raw, "")


def _build(cls: type, raw: Any, key: str) -> Any:
    where = key or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for name in raw:
        if name not in names:
            raise ConfigError(
                f"{_join(key, name)} is not a known param{_did_you_mean(str(name), names)}"
            )
    values = {}
    for name in names:
        child = _join(key, name)
        if name not in raw:
            raise ConfigError(f"{child} is missing")
        values[name] = _convert(hints[name], raw[name], child)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in typing.get_args(hint):
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint == tuple[str, ...]:
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise ConfigError(f"{key} must be a list of strings, got {_describe(value)}")
        return tuple(value)
    else:
        raise TypeError(f"unsupported param type {hint} for {key}")
    if not ok:
        raise ConfigError(f"{key} must be {hint.__name__}, got {_describe(value)}")
    return value


def _one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value}")


def _did_you_mean(name: str, candidates: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _join(prefix: str, name: Any) -> str:
    return f"{prefix}.{name}" if prefix else str(name)
