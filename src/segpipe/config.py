"""Typed, validated view of `params.yaml`: the single source of truth for every tunable.

Every section is a frozen dataclass. `load_params` refuses unknown keys (with a did-you-mean
suggestion), values of the wrong type and values out of range, naming the key in the error.
Each set of choices is one `Literal` type: validation reads it here. Where each choice has its own
implementation (a loss, a schedule, a strategy, a layout, a quantization, a precision), the code
that acts on it keys a registry by the same type, and tests/test_config.py checks that registry
against the type; the two-way choices (`SourceKind`, `OnBadExample`, `Tta`) are an if/else where
they are used.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from segpipe.errors import ConfigError, ParamError
from segpipe.typed import choices, did_you_mean, from_mapping

EMBEDDED_DATASET = "synthetic_pets"
EMBEDDED_VERSION = "1.0.0"  # the one version of the embedded dataset (synthetic_pets.py builds it)

SourceKind = Literal["tfds", "folder"]
FolderLayout = Literal["oxford", "masks"]
OnBadExample = Literal["error", "skip"]
LossName = Literal["cross_entropy", "cross_entropy_dice"]
LrSchedule = Literal["constant", "cosine"]
Distribute = Literal["auto", "none", "mirrored"]
Precision = Literal["off", "float16", "bfloat16"]  # one Keras dtype policy each
MixedPrecision = Literal[Precision, "auto"]  # auto: the Precision this machine runs fastest
TfliteQuantization = Literal["none", "float16", "dynamic_range"]
Tta = Literal["none", "flip"]
Encoder = Literal["unet", "mobilenet_v2", "efficientnet_v2_b0", "resnet50_v2", "vgg16"]  # unet: from scratch
EncoderWeights = Literal["none", "imagenet"]  # or the path of a Keras weights file in model.pretrained_dir

_FIGURE = {"figure": True}  # marks the paths of PNG figures (visualize's outputs, the report's images)
# Upper bounds, far above any sane value: an absurd one is refused at load instead of exhausting memory.
MAX_SIDE = 4096  # pixels
MAX_EXAMPLES = 1_000_000
MAX_BATCH = 65_536
MAX_SEED = 2**32 - 1  # what numpy and Keras accept
MAX_CLASSES = 256  # masks and predictions are 8-bit class ids (palette PNGs)
BACKBONE_MIN_SIDE = 32  # the smallest input keras.applications builds each of our backbones for
BACKBONE_MAX_DEPTH = 5  # a backbone's deepest features are at stride 32
# Folders no output may be written into: the code, git's and DVC's own state.
_RESERVED = (".git", ".dvc", "src", "stages", "tests", "benchmarks")
# The params each stage reads, as dvc.yaml lists them (tests/test_dvc_yaml.py checks that they agree); the
# check stage validates them all, so a refused key's message names the stages that read it.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "check": ("paths", "data", "model", "train", "evaluate", "visualize", "export"),
    "prepare": ("paths.prepared", "data"),
    "train": ("paths.prepared", "paths.model", "paths.backup", "paths.live", "model", "train"),
    "evaluate": (
        "paths.prepared",
        "paths.model",
        "paths.eval_metrics",
        "paths.confusion",
        "paths.class_iou",
        "paths.image_iou",
        "evaluate",
    ),
    "visualize": (
        "paths.prepared",
        "paths.model",
        "paths.live",
        "paths.image_iou",
        "paths.training_curves",
        "paths.predictions",
        "paths.worst",
        "visualize",
        "evaluate.tta",
    ),
    "export": ("paths.model", "paths.export", "export"),
}


@dataclass(frozen=True)
class PathsConfig:
    checked: str
    prepared: str
    model: str
    backup: str
    live: str
    eval_metrics: str
    confusion: str
    class_iou: str
    image_iou: str
    export: str
    training_curves: str = dataclasses.field(metadata=_FIGURE)
    predictions: str = dataclasses.field(metadata=_FIGURE)
    worst: str = dataclasses.field(metadata=_FIGURE)

    def figures(self) -> dict[str, Path]:
        """The PNG figures visualize draws, by param name."""
        return {f.name: Path(getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata.get("figure")}

    def outputs(self) -> dict[str, Path]:
        """Every path a stage writes (all of them), by param name."""
        return {f.name: Path(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def validate(self, key: str) -> None:
        for name, path in self.figures().items():
            if path.suffix != ".png":
                raise ParamError(f"{key}.{name}", f"must name a .png file, got {str(path)!r}")
        targets = {name: output_target(f"{key}.{name}", path) for name, path in self.outputs().items()}
        for (name, target), (other, other_target) in itertools.permutations(sorted(targets.items()), 2):
            if target == other_target or target in other_target.parents:
                raise ParamError(
                    f"{key}.{name}",
                    f"overlaps {key}.{other} ({getattr(self, other)}): outputs must be apart",
                    value=getattr(self, name),
                )


def output_target(key: str, path: Path) -> Path:
    """Where the output `path` really leads (links resolved), refused unless it stays inside the project
    (the working folder) and out of its code and git's and DVC's state."""
    check_path_text(key, str(path))
    if path.is_absolute() or ".." in path.parts or path.parts[:1] in ((), (".",)) or path.parts[0] in _RESERVED:
        raise ParamError(
            key, f"must be a relative path inside the project, outside {', '.join(_RESERVED)}, got {str(path)!r}"
        )
    root = Path.cwd().resolve()
    target = (root / path).resolve()
    inside = target.relative_to(root).parts if target.is_relative_to(root) else ()
    if not inside or inside[0] in _RESERVED:
        raise ParamError(
            key,
            f"leads through a link to {target}, outside the project or into {', '.join(_RESERVED)}: "
            "outputs must stay inside it",
            value=str(path),
        )
    return target


def check_path_text(key: str, text: str) -> None:
    """Refuse a path no file system accepts (a NUL byte), naming the key, before any file call trips on it."""
    if "\x00" in text:
        raise ParamError(key, f"holds a NUL byte ({text!r}): not a usable path")


@dataclass(frozen=True)
class EmbeddedConfig:
    train_examples: int
    test_examples: int
    min_side: int
    max_side: int
    seed: int

    def validate(self, key: str) -> None:
        _in_range(f"{key}.train_examples", self.train_examples, 2, MAX_EXAMPLES)
        _in_range(f"{key}.test_examples", self.test_examples, 1, MAX_EXAMPLES)
        _in_range(f"{key}.min_side", self.min_side, 16, MAX_SIDE)
        _in_range(f"{key}.max_side", self.max_side, self.min_side, MAX_SIDE)
        _in_range(f"{key}.seed", self.seed, 0, MAX_SEED)


@dataclass(frozen=True)
class FolderConfig:
    RENAMED: ClassVar[dict[str, str]] = {"path": "data.input"}

    layout: FolderLayout
    class_names: tuple[str, ...]
    test_fraction: float

    def validate(self, key: str) -> None:
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ParamError(
                f"{key}.class_names", f"must name at least 2 distinct classes, got {list(self.class_names)}"
            )
        if len(self.class_names) > MAX_CLASSES:
            raise ParamError(
                f"{key}.class_names",
                f"must name at most {MAX_CLASSES} classes (masks hold 8-bit class ids), got {len(self.class_names)}",
            )
        _in_interval(f"{key}.test_fraction", self.test_fraction, "(0, 1)")


@dataclass(frozen=True)
class DataConfig:
    RENAMED: ClassVar[dict[str, str]] = {"manual_dir": "data.input"}

    source: SourceKind
    dataset: str
    tfds_data_dir: str
    input: str
    download_timeout: float
    folder: FolderConfig
    image_size: int
    val_fraction: float
    split_seed: int
    shard_size: int
    on_bad_example: OnBadExample
    max_image_pixels: int
    embedded: EmbeddedConfig

    @property
    def dataset_name(self) -> str:
        return self.dataset.split(":")[0]

    @property
    def dataset_version(self) -> str | None:
        return self.dataset.split(":")[1] if ":" in self.dataset else None

    def validate(self, key: str) -> None:
        check_path_text(f"{key}.tfds_data_dir", self.tfds_data_dir)
        check_path_text(f"{key}.input", self.input)
        if self.source == "tfds":
            known = known_datasets()
            if self.dataset_name not in known:
                raise ParamError(
                    f"{key}.dataset",
                    f"names an unknown TFDS dataset {self.dataset_name!r}{did_you_mean(self.dataset_name, known)}",
                )
            versions = dataset_versions(self.dataset_name)
            if self.dataset_version is not None and self.dataset_version not in versions:
                raise ParamError(
                    f"{key}.dataset",
                    f"asks for version {self.dataset_version!r} of {self.dataset_name}, which has "
                    f"{', '.join(versions)}: write {self.dataset_name}:{versions[0]} (or {self.dataset_name} "
                    "for its latest)",
                )
        _in_interval(f"{key}.download_timeout", self.download_timeout, "(0, 3600]")
        self.folder.validate(f"{key}.folder")
        _in_range(f"{key}.image_size", self.image_size, 8, MAX_SIDE)
        _in_range(f"{key}.split_seed", self.split_seed, 0, MAX_SEED)
        _in_interval(f"{key}.val_fraction", self.val_fraction, "(0, 1)")
        _in_range(f"{key}.shard_size", self.shard_size, 1, 100_000)
        _in_range(f"{key}.max_image_pixels", self.max_image_pixels, 1, 2**31 - 1)
        self.embedded.validate(f"{key}.embedded")


@dataclass(frozen=True)
class ModelConfig:
    depth: int
    base_filters: int
    batch_norm: bool
    batch_norm_momentum: float
    dropout: float
    encoder: Encoder = "unet"  # defaults for code that builds a from-scratch U-Net (params.yaml lists every key)
    encoder_weights: str = "none"  # an EncoderWeights, or a path
    pretrained_dir: str = "models/pretrained"

    @property
    def has_backbone(self) -> bool:
        return self.encoder != "unet"

    @property
    def weights_file(self) -> Path | None:
        """The weights file `encoder_weights` names, None for `none` and `imagenet`."""
        return None if self.encoder_weights in choices(EncoderWeights) else Path(self.encoder_weights)

    def validate(self, key: str) -> None:
        check_path_text(f"{key}.pretrained_dir", self.pretrained_dir)
        check_path_text(f"{key}.encoder_weights", self.encoder_weights)
        if not self.has_backbone and self.encoder_weights != "none":
            raise ParamError(
                f"{key}.encoder_weights",
                f"must be none with {key}.encoder unet (a from-scratch encoder has no pretrained weights), "
                f"got {self.encoder_weights!r}",
            )
        if self.weights_file is not None:
            self._check_weights_file(key, self.weights_file)
        _in_range(f"{key}.depth", self.depth, 1, 8)
        if self.has_backbone and self.depth > BACKBONE_MAX_DEPTH:
            raise ParamError(
                f"{key}.depth",
                f"must be <= {BACKBONE_MAX_DEPTH} with {key}.encoder {self.encoder} (its deepest features are at "
                f"stride {2**BACKBONE_MAX_DEPTH}), got {self.depth}",
            )
        _in_range(f"{key}.base_filters", self.base_filters, 1, 1024)
        _in_interval(f"{key}.batch_norm_momentum", self.batch_norm_momentum, "(0, 1)")
        _in_interval(f"{key}.dropout", self.dropout, "[0, 1)")

    def _check_weights_file(self, key: str, path: Path) -> None:
        """A weights file must lie in `pretrained_dir`, which train depends on (dvc.yaml): DVC re-runs train when
        it changes. Keras reads legacy .h5 files and its own .weights.h5."""
        folder = Path(self.pretrained_dir).resolve()
        if folder not in path.resolve().parents:
            raise ParamError(
                f"{key}.encoder_weights",
                f"must be none, imagenet or a weights file inside {key}.pretrained_dir ({self.pretrained_dir}, "
                f"a DVC dependency of train), got {str(path)!r}",
            )
        if path.suffix != ".h5" or not path.is_file():
            raise ParamError(
                f"{key}.encoder_weights",
                f"must name an existing Keras weights file (.weights.h5 or .h5), got {str(path)!r}",
            )


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool
    min_scale: float
    jitter: float

    def validate(self, key: str) -> None:
        _in_interval(f"{key}.min_scale", self.min_scale, "(0, 1]")
        _in_interval(f"{key}.jitter", self.jitter, "[0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: LrSchedule
    warmup_epochs: int
    loss_function: LossName
    early_stopping_patience: int
    freeze_encoder_epochs: int
    augment: AugmentConfig
    seed: int
    deterministic: bool
    mixed_precision: MixedPrecision
    jit_compile: bool
    distribute: Distribute
    cluster_timeout: float
    in_memory_max_mb: float

    @property
    def warmup(self) -> int:
        """Epochs of warm-up the run does: `warmup_epochs` capped at `epochs - 1`, so the cosine decay always
        has an epoch (a one-epoch run, `-S train.epochs=1`, decays from the peak rate with the defaults)."""
        return min(self.warmup_epochs, self.epochs - 1)

    def validate(self, key: str) -> None:
        _in_range(f"{key}.epochs", self.epochs, 1, 100_000)
        _in_range(f"{key}.batch_size", self.batch_size, 1, MAX_BATCH)
        if not self.learning_rate > 0:
            raise ParamError(f"{key}.learning_rate", f"must be > 0, got {self.learning_rate}")
        _in_range(f"{key}.warmup_epochs", self.warmup_epochs, 0, 100_000)
        _in_range(f"{key}.early_stopping_patience", self.early_stopping_patience, 0, 100_000)
        _in_range(f"{key}.freeze_encoder_epochs", self.freeze_encoder_epochs, 0, self.epochs)
        _in_range(f"{key}.seed", self.seed, 0, MAX_SEED)
        self.augment.validate(f"{key}.augment")
        _in_interval(f"{key}.cluster_timeout", self.cluster_timeout, "(0, 86400]", " seconds")
        _in_interval(f"{key}.in_memory_max_mb", self.in_memory_max_mb, "[0, 1e9]")
        if self.jit_compile and self.deterministic:
            raise ParamError(
                f"{key}.jit_compile",
                f"has no effect while {key}.deterministic is true (Keras turns XLA off under op determinism): "
                "set one of them to false",
            )


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    tta: Tta

    def validate(self, key: str) -> None:
        _in_range(f"{key}.batch_size", self.batch_size, 1, MAX_BATCH)


@dataclass(frozen=True)
class ExportConfig:
    tflite_quantization: TfliteQuantization


@dataclass(frozen=True)
class VisualizeConfig:
    num_examples: int
    seed: int
    num_worst: int
    dpi: int

    def validate(self, key: str) -> None:
        _in_range(f"{key}.num_examples", self.num_examples, 1, 100)
        _in_range(f"{key}.num_worst", self.num_worst, 1, 100)
        _in_range(f"{key}.dpi", self.dpi, 20, 600)
        _in_range(f"{key}.seed", self.seed, 0, MAX_SEED)


@dataclass(frozen=True)
class Params:
    paths: PathsConfig
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    visualize: VisualizeConfig
    export: ExportConfig

    def validate(self) -> None:
        for field in dataclasses.fields(self):
            section = getattr(self, field.name)
            if hasattr(section, "validate"):
                section.validate(field.name)
        self._check_outputs_spare_inputs()
        factor = 2**self.model.depth
        if self.data.image_size % factor:
            raise ParamError(
                "data.image_size", f"must be divisible by 2**model.depth = {factor}, got {self.data.image_size}"
            )
        if self.model.has_backbone and self.data.image_size < BACKBONE_MIN_SIDE:
            raise ParamError(
                "data.image_size",
                f"must be >= {BACKBONE_MIN_SIDE} with model.encoder {self.model.encoder} (the smallest input "
                f"keras.applications builds it for), got {self.data.image_size}",
            )
        if self.train.freeze_encoder_epochs and not self.model.has_backbone:
            raise ParamError(
                "train.freeze_encoder_epochs",
                "must be 0 with model.encoder unet (only a backbone is frozen), "
                f"got {self.train.freeze_encoder_epochs}",
            )

    def _check_outputs_spare_inputs(self) -> None:
        """No output may be, contain or lie inside a folder the pipeline reads from (links resolved)."""
        inputs = {
            "data.input": self.data.input,
            "data.tfds_data_dir": self.data.tfds_data_dir,
            "model.pretrained_dir": self.model.pretrained_dir,
        }
        for name, output in self.paths.outputs().items():
            target = Path(output).resolve()
            for input_name, input_path in inputs.items():
                source = Path(input_path).resolve()
                if target == source or target in source.parents:
                    raise ParamError(
                        f"paths.{name}",
                        f"contains {input_name} ({input_path}): outputs must not hold inputs",
                        str(output),
                    )
                if source in target.parents:
                    raise ParamError(
                        f"paths.{name}",
                        f"is inside {input_name} ({input_path}): outputs must not be written among inputs",
                        str(output),
                    )


def dataset_versions(name: str) -> list[str]:
    """The versions of the TFDS dataset `name` this installation can build, newest first."""
    import tensorflow_datasets as tfds  # here, not at the top: only a TFDS source needs it

    if name == EMBEDDED_DATASET:
        return [EMBEDDED_VERSION]
    builder = tfds.builder_cls(name)
    versions = {str(builder.VERSION), *(str(version) for version in builder.SUPPORTED_VERSIONS)}
    return sorted(versions, key=lambda text: tfds.core.Version(text), reverse=True)


def known_datasets() -> list[str]:
    """Names of every TFDS dataset this installation can build, the embedded one included."""
    import tensorflow_datasets as tfds  # here, not at the top: only a TFDS source needs it

    return sorted(set(tfds.list_builders(with_community_datasets=False)) | {EMBEDDED_DATASET})


class _ParamsLoader(yaml.SafeLoader):
    """A safe loader that reads numbers as DVC does (YAML 1.2: `2e-3` is a float, not a string) and
    refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in lines:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice (lines {lines[key]} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 booleans, as DVC reads them: only true/false. YAML 1.1's on/off/yes/no stay strings, so
# `mixed_precision: off` is the choice "off" here too, not a boolean.
_ParamsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read `path` with a safe YAML loader and return the validated params; a refused key's error says
    which stages read it."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_ParamsLoader)  # safe: _ParamsLoader is a SafeLoader
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    try:
        params = params_from_dict(raw)
        params.validate()
    except ParamError as error:
        raise ParamError(error.key, error.problem, error.value, read_by(error.key)) from None
    return params


def read_by(key: str) -> tuple[str, ...]:
    """The stages that read `key` (or a key inside it), in pipeline order; check only if no other stage does
    (`paths.checked`); none for a key outside every section."""
    readers = {
        stage: any(_within(key, read) or _within(read, key) for read in keys) for stage, keys in STAGE_PARAMS.items()
    }
    others = tuple(stage for stage, reads in readers.items() if reads and stage != "check")
    return others or (("check",) if readers["check"] else ())


def _within(key: str, section: str) -> bool:
    return key == section or key.startswith(f"{section}.")


def params_from_dict(raw: Any) -> Params:
    """Build `Params` from a plain mapping, checking keys and types but not ranges."""
    return from_mapping(Params, raw)


def _in_range(key: str, value: int, minimum: int, maximum: int) -> None:
    """Refuse the whole number `value` outside [minimum, maximum]: an absurd size fails here, not when
    memory runs out."""
    if value < minimum:
        raise ParamError(key, f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise ParamError(key, f"must be <= {maximum}, got {value}")


def _in_interval(key: str, value: float, interval: str, unit: str = "") -> None:
    """Refuse `value` outside `interval`, written as the error shows it: "(0, 1]" excludes 0 and includes 1."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    if not (above and below):
        raise ParamError(key, f"must be in {interval}{unit}, got {value}")
