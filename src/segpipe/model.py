"""A U-Net built from reusable down- and up-sampling blocks (Keras functional API), its encoder from scratch
or a keras.applications backbone (encoders.py)."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from segpipe import atomic
from segpipe.config import ModelConfig
from segpipe.encoders import encoder_features
from segpipe.errors import DataError
from segpipe.keras_workarounds import layer_dtype_policy
from segpipe.outputs import MODEL_CARD
from segpipe.prepared import Normalization, PreparedData


def conv_block(x, filters: int, config: ModelConfig):
    """Two 3×3 convolutions, each followed by optional batch norm and a ReLU."""
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not config.batch_norm)(x)
        if config.batch_norm:
            x = layers.BatchNormalization(momentum=config.batch_norm_momentum)(x)
        x = layers.Activation("relu")(x)
    return x


def downsample_block(x, filters: int, config: ModelConfig):
    """Return (features to skip across, features halved in resolution for the next level)."""
    skip = conv_block(x, filters, config)
    down = layers.MaxPooling2D(2)(skip)
    if config.dropout:
        down = layers.Dropout(config.dropout)(down)
    return skip, down


def upsample_block(x, skip, filters: int, config: ModelConfig):
    """Double the resolution of `x`, concatenate the matching skip (if any: a backbone has none at full
    resolution), and convolve."""
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
    if skip is None:
        return conv_block(x, filters, config)
    x = layers.Concatenate()([x, skip])
    if config.dropout:
        x = layers.Dropout(config.dropout)(x)
    return conv_block(x, filters, config)


def build_unet(
    image_size: int,
    num_classes: int,
    config: ModelConfig,
    normalization: Normalization,
    dtype_policy: str = "float32",
    with_encoder_weights: bool = True,
) -> keras.Model:
    """U-Net taking uint8-range RGB images and returning per-pixel float32 logits.

    Its layers compute under `dtype_policy` (e.g. "mixed_bfloat16"), all but the logits layer. A backbone
    encoder starts from `config.encoder_weights`, or from random init without `with_encoder_weights`.
    """
    with layer_dtype_policy(dtype_policy):
        if config.has_backbone:
            return _backbone_unet(image_size, num_classes, config, with_encoder_weights)
        return _unet(image_size, num_classes, config, normalization)


def _unet(image_size: int, num_classes: int, config: ModelConfig, normalization: Normalization) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(normalization.scale, normalization.offset)(inputs)
    skips = []
    for level in range(config.depth):
        skip, x = downsample_block(x, config.base_filters * 2**level, config)
        skips.append(skip)
    x = conv_block(x, config.base_filters * 2**config.depth, config)
    for level in reversed(range(config.depth)):
        x = upsample_block(x, skips[level], config.base_filters * 2**level, config)
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="unet")


def _backbone_unet(image_size: int, num_classes: int, config: ModelConfig, with_weights: bool) -> keras.Model:
    """The backbone's features joined by the U-Net's decoder: at stride 2**level, `base_filters * 2**level`
    filters, as in the from-scratch U-Net (the backbone normalizes its input itself)."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = encoder_features(inputs, image_size, config, with_weights)
    x = features[2**config.depth]
    for level in reversed(range(config.depth)):
        x = upsample_block(x, features.get(2**level), config.base_filters * 2**level, config)
    logits = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=f"unet_{config.encoder}")


@dataclass(frozen=True)
class ModelCard:
    """What a trained model says of itself, so that using it needs nothing from the prepared data."""

    class_names: tuple[str, ...]
    image_size: int


def save_model(model: keras.Model, path: str | Path, class_names: tuple[str, ...]) -> None:
    """Save atomically as `.keras`, with its model card (`class_names`, the input it takes), so that equal
    weights give equal bytes.

    Zip timestamps are fixed, Keras's `date_saved` is dropped from metadata.json and the
    `shared_object_id`s in config.json (Python object addresses) are renumbered in order of
    appearance: otherwise two identical runs would differ and DVC would re-run evaluation.
    """
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        staging = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(staging)
            with zipfile.ZipFile(staging) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
                for info in sorted(source.infolist(), key=lambda item: item.filename):
                    fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                    fixed.compress_type = zipfile.ZIP_DEFLATED
                    content = source.read(info.filename)
                    if info.filename == "metadata.json":
                        content = _without_save_date(content)
                    elif info.filename == "config.json":
                        content = _with_stable_object_ids(content)
                    target.writestr(fixed, content)
                card = zipfile.ZipInfo(MODEL_CARD, date_time=(1980, 1, 1, 0, 0, 0))
                card.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(card, _card_json(model, class_names))
        finally:
            staging.unlink(missing_ok=True)


def _card_json(model: keras.Model, class_names: tuple[str, ...]) -> bytes:
    _, size, _, _ = model.input_shape
    if len(class_names) != model.output_shape[-1]:
        raise ValueError(f"{len(class_names)} class names for a model of {model.output_shape[-1]} classes")
    card = {
        "class_names": list(class_names),
        "image_size": size,
        "input": f"uint8 RGB images (0-255), N x {size} x {size} x 3",
        "output": f"float32 class logits, N x {size} x {size} x {len(class_names)}",
    }
    return json.dumps(card, indent=2, sort_keys=True).encode()


def model_card(path: str | Path) -> ModelCard | None:
    """The card saved inside the `.keras` file at `path`, or None for a model saved without one."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = json.loads(archive.read(MODEL_CARD))
    except (KeyError, OSError, ValueError, zipfile.BadZipFile):
        return None
    names = raw.get("class_names") if isinstance(raw, dict) else None
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        return None
    return ModelCard(tuple(names), int(raw.get("image_size", 0)))


def _without_save_date(metadata: bytes) -> bytes:
    fields = json.loads(metadata)
    fields.pop("date_saved", None)
    return json.dumps(fields, sort_keys=True).encode()


def _with_stable_object_ids(config: bytes) -> bytes:
    numbers: dict[int, int] = {}

    def renumber(node):
        if isinstance(node, dict):
            return {
                key: numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id" else renumber(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [renumber(item) for item in node]
        return node

    return json.dumps(renumber(json.loads(config))).encode()


# Where a missing model comes from: trained here, or the one the project's DVC remote holds for this commit.
HOW_TO_GET_A_MODEL = "`dvc repro` trains it, `dvc pull` fetches the trained one from the project's DVC remote"


def load_model(path: str | Path, expect: PreparedData | None = None) -> keras.Model:
    """Load a saved model for inference, in Keras safe mode (no deserialized Python code).

    With `expect`, a model whose input size or class count differs from that data is refused.
    """
    if not Path(path).exists():
        raise DataError(f"{path} not found: {HOW_TO_GET_A_MODEL}")
    if Path(path).is_file() and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise DataError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is not)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "lambda" in str(error).lower():
            raise DataError(
                f"{path}: refused, it holds Python code (a lambda) that Keras safe mode will not run"
            ) from None
        raise DataError(f"{path}: not a loadable Keras model ({str(error).splitlines()[0]})") from None
    except Exception as error:  # unreadable weights, a folder, whatever else Keras raises: one line
        first_line = (str(error).splitlines() or [""])[0]
        raise DataError(f"{path}: not a loadable Keras model ({type(error).__name__}: {first_line})") from None
    if expect is not None:
        _check_fits(model, expect, path)
    return model


def _check_fits(model: keras.Model, prepared: PreparedData, path: str | Path) -> None:
    size, classes = prepared.image_size, prepared.num_classes
    _, height, width, _ = model.input_shape
    outputs = model.output_shape[-1]
    if (height, width, outputs) != (size, size, classes):
        raise DataError(
            f"{path} takes {height}x{width} images and predicts {outputs} classes, but the prepared "
            f"data is {size}x{size} with {classes} classes: re-run the train stage"
        )
