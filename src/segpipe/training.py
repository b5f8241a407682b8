"""Input pipelines, distribution, and the training loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from dvclive.keras import DVCLiveCallback

from segpipe import atomic, tfrecords
from segpipe.augment import augment_batch
from segpipe.config import ModelConfig, TrainConfig
from segpipe.losses import loss_for
from segpipe.model import build_unet
from segpipe.reports import HISTORY_METRICS

log = logging.getLogger(__name__)


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


def distribution_strategy(kind: str) -> tf.distribute.Strategy:
    """The strategy `train.distribute` asks for (see params.yaml)."""
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "auto" and json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "auto" and len(gpus) > 1 or kind == "mirrored":
        devices = [device.name for device in gpus or tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.get_strategy()


def training_dataset(
    folder: Path, manifest: dict[str, Any], train: TrainConfig, start_epoch: int = 0
) -> tf.data.Dataset:
    """Endless augmented batches, epoch after epoch, starting at `start_epoch`.

    The train split is held in memory; what is shuffled and seeded is a stream of example indices
    and augmentation seeds fixed by `train.seed`. Epoch k therefore sees the same batches whether
    training started at epoch 0 or resumed at k, and skipping to k costs no image work.
    """
    images, masks = tfrecords.split_arrays(folder, manifest, "train")
    with tf.device("/cpu:0"):
        images, masks = tf.Variable(images, trainable=False), tf.Variable(masks, trainable=False)
    count = int(images.shape[0])
    order = tf.data.Dataset.range(count).shuffle(count, seed=train.seed, reshuffle_each_iteration=True)
    batches = tf.data.Dataset.zip(order.batch(train.batch_size).repeat(), tf.data.Dataset.random(seed=train.seed))
    batches = batches.skip(start_epoch * math.ceil(count / train.batch_size))

    def load(indices: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_batch(tf.gather(images, indices), tf.gather(masks, indices), seed, train.augment)

    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def learning_rate(train: TrainConfig, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """A constant rate, or linear warm-up to `train.learning_rate` followed by cosine decay to 0."""
    if train.lr_schedule == "constant":
        return train.learning_rate
    warmup = train.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else train.learning_rate,
        decay_steps=train.epochs * steps_per_epoch - warmup,
        warmup_target=train.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: keras.Model, num_classes: int, train: TrainConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(train, steps_per_epoch)),
        loss=loss_for(train.loss),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
            keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
        ],
        jit_compile=train.jit_compile,
    )


def train_model(
    folder: Path,
    manifest: dict[str, Any],
    model_config: ModelConfig,
    train: TrainConfig,
    live_dir: Path | None = None,
    backup_dir: Path | None = None,
) -> tuple[keras.Model, list[dict[str, float]]]:
    """Build and fit a U-Net on the prepared data; return it with one history row per epoch.

    With `live_dir`, DVCLive logs every epoch there. With `backup_dir`, the state after each
    epoch is backed up; a run killed midway resumes from its last complete epoch, and the
    backup is removed when training completes.
    """
    num_classes = len(manifest["class_names"])
    steps_per_epoch = math.ceil(manifest["splits"]["train"]["examples"] / train.batch_size)
    strategy = distribution_strategy(train.distribute)
    with strategy.scope():
        model = build_unet(manifest["image_size"], num_classes, model_config, manifest["normalization"])
        compile_model(model, num_classes, train, steps_per_epoch)
    log.info("U-Net with %d parameters, %d replica(s)", model.count_params(), strategy.num_replicas_in_sync)
    start_epoch = resume_epoch(backup_dir, run_fingerprint(manifest, model_config, train)) if backup_dir else 0
    callbacks: list[keras.callbacks.Callback] = []
    if train.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_mean_iou", mode="max", patience=train.early_stopping_patience, restore_best_weights=True
            )
        )
    if live_dir is not None:
        callbacks.append(live_callback(live_dir, start_epoch))
    if backup_dir is not None:  # after DVCLive: an epoch is backed up only once it is logged
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    history = model.fit(
        training_dataset(folder, manifest, train, start_epoch),
        steps_per_epoch=steps_per_epoch,
        validation_data=tfrecords.batched_split(folder, manifest, "val", train.batch_size),
        epochs=train.epochs,
        callbacks=callbacks,
        verbose=2,
    )
    return model, history_rows(history.history)


def run_fingerprint(manifest: dict[str, Any], model_config: ModelConfig, train: TrainConfig) -> str:
    """A digest of everything that shapes a training run, so a backup is never resumed by another run."""
    settings = {"manifest": manifest, "model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def resume_epoch(backup_dir: Path, fingerprint: str) -> int:
    """The epoch to resume at: the backup's, if it was made by this very run; otherwise 0.

    A backup left by a run with other params or data is removed.
    """
    stamp = backup_dir / "run.json"
    metadata = backup_dir / "training_metadata.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint and metadata.exists():
        epoch = int(json.loads(metadata.read_text())["epoch"])
        log.info("resuming from the backup in %s after epoch %d", backup_dir, epoch)
        return epoch
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir(parents=True)
    atomic.write_json(stamp, {"fingerprint": fingerprint})
    return 0


def live_callback(live_dir: Path, start_epoch: int) -> DVCLiveCallback:
    """DVCLive's Keras callback; on resume, its logs continue at `start_epoch` with no gap or repeat."""
    if start_epoch:
        for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
            rows = tsv.read_text().splitlines()
            kept = [rows[0]] + [row for row in rows[1:] if int(row.split("\t")[0]) < start_epoch]
            atomic.write_text(tsv, "\n".join(kept) + "\n")
    # dvc.yaml stays hand-written (dvcyaml=False); DVC itself records experiments (save_dvc_exp=False).
    callback = DVCLiveCallback(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=bool(start_epoch))
    callback.live.step = start_epoch
    return callback


def history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    """Keras's column-wise history as rows `{epoch, loss, val_loss, ...}` in a fixed key order."""
    columns = [name for metric in HISTORY_METRICS for name in (metric, f"val_{metric}")]
    epochs = len(history["loss"])
    return [{"epoch": epoch + 1, **{name: float(history[name][epoch]) for name in columns}} for epoch in range(epochs)]
