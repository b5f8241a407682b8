"""Input pipelines and the training loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from segpipe import tfrecords
from segpipe.config import ModelConfig, TrainConfig
from segpipe.model import build_unet

log = logging.getLogger(__name__)

HISTORY_METRICS = ("loss", "pixel_accuracy", "mean_iou")


def configure_runtime(train: TrainConfig) -> str:
    """Seed everything, set determinism and precision; return the device training will use."""
    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if train.mixed_precision and gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    elif train.mixed_precision:
        log.warning("train.mixed_precision is on but no GPU is visible: training in float32")
    device = f"GPU ({len(gpus)} visible)" if gpus else "CPU"
    log.info("training on %s", device)
    return device


def training_dataset(folder: Path, manifest: dict[str, Any], train: TrainConfig) -> tf.data.Dataset:
    """Shuffled, augmented, batched training examples; the order is fixed by `train.seed`."""
    dataset = tfrecords.read_split(folder, manifest, "train").cache()
    dataset = dataset.shuffle(train.shuffle_buffer, seed=train.seed, reshuffle_each_iteration=True)
    if train.augment_flip:
        dataset = dataset.map(_random_flip(train.seed), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(train.batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(folder: Path, manifest: dict[str, Any], split: str, batch_size: int) -> tf.data.Dataset:
    """Batched examples of `split` in their stored order, unaugmented."""
    return tfrecords.read_split(folder, manifest, split).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def compile_model(model: keras.Model, num_classes: int, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
            keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
        ],
    )


def train_model(
    folder: Path, manifest: dict[str, Any], model_config: ModelConfig, train: TrainConfig
) -> tuple[keras.Model, list[dict[str, float]]]:
    """Build and fit a U-Net on the prepared data; return it with one history row per epoch."""
    num_classes = len(manifest["class_names"])
    model = build_unet(manifest["image_size"], num_classes, model_config, manifest["normalization"])
    compile_model(model, num_classes, train.learning_rate)
    log.info("U-Net with %d parameters", model.count_params())
    history = model.fit(
        training_dataset(folder, manifest, train),
        validation_data=evaluation_dataset(folder, manifest, "val", train.batch_size),
        epochs=train.epochs,
        verbose=2,
    )
    return model, history_rows(history.history)


def history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    """Keras's column-wise history as rows `{epoch, loss, val_loss, ...}` in a fixed key order."""
    columns = [name for metric in HISTORY_METRICS for name in (metric, f"val_{metric}")]
    epochs = len(history["loss"])
    return [{"epoch": epoch + 1, **{name: float(history[name][epoch]) for name in columns}} for epoch in range(epochs)]


def _random_flip(seed: int):
    """Flip image and mask together, left-right, with probability 1/2 (stateless, seeded)."""

    def flip(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        pair = tf.concat([image, mask], axis=-1)
        pair = tf.image.random_flip_left_right(pair, seed=seed)
        return pair[..., :3], pair[..., 3:]

    return flip
