"""Input pipelines, distribution, and the training loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from segpipe import atomic, training_log
from segpipe.augment import augment_batch
from segpipe.config import Distribute, LrSchedule, ModelConfig, TrainConfig
from segpipe.losses import loss_for
from segpipe.model import build_unet
from segpipe.prepared import PreparedData

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


def _cluster_or_local_gpus() -> tf.distribute.Strategy:
    if json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _all_local_devices() if len(tf.config.list_logical_devices("GPU")) > 1 else tf.distribute.get_strategy()


def _all_local_devices() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy(
        devices=[device.name for device in gpus or tf.config.list_logical_devices("CPU")]
    )


STRATEGIES: dict[Distribute, Callable[[], tf.distribute.Strategy]] = {
    "auto": _cluster_or_local_gpus,
    "mirrored": _all_local_devices,
    "none": tf.distribute.get_strategy,
}


def distribution_strategy(kind: Distribute) -> tf.distribute.Strategy:
    """The strategy `train.distribute` asks for (see params.yaml)."""
    return STRATEGIES[kind]()


def training_dataset(prepared: PreparedData, train: TrainConfig, start_epoch: int = 0) -> tf.data.Dataset:
    """Endless augmented batches, epoch after epoch, starting at `start_epoch`.

    The train split is held in memory; what is shuffled and seeded is a stream of example indices
    and augmentation seeds fixed by `train.seed`. Epoch k therefore sees the same batches whether
    training started at epoch 0 or resumed at k, and skipping to k costs no image work.
    """
    images, masks = prepared.arrays("train")
    with tf.device("/cpu:0"):
        images, masks = tf.Variable(images, trainable=False), tf.Variable(masks, trainable=False)
    count = int(images.shape[0])
    order = tf.data.Dataset.range(count).shuffle(count, seed=train.seed, reshuffle_each_iteration=True)
    batches = tf.data.Dataset.zip(order.batch(train.batch_size).repeat(), tf.data.Dataset.random(seed=train.seed))
    batches = batches.skip(start_epoch * prepared.steps_per_epoch(train.batch_size))

    def load(indices: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_batch(tf.gather(images, indices), tf.gather(masks, indices), seed, train.augment)

    return batches.map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _constant_rate(train: TrainConfig, steps_per_epoch: int) -> float:
    return train.learning_rate


def _warmup_cosine(train: TrainConfig, steps_per_epoch: int) -> keras.optimizers.schedules.LearningRateSchedule:
    warmup = train.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else train.learning_rate,
        decay_steps=train.epochs * steps_per_epoch - warmup,
        warmup_target=train.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


LR_SCHEDULES: dict[
    LrSchedule, Callable[[TrainConfig, int], float | keras.optimizers.schedules.LearningRateSchedule]
] = {
    "constant": _constant_rate,
    "cosine": _warmup_cosine,  # linear warm-up to train.learning_rate, then cosine decay to 0
}


def compile_model(model: keras.Model, num_classes: int, train: TrainConfig, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(LR_SCHEDULES[train.lr_schedule](train, steps_per_epoch)),
        loss=loss_for(train.loss),
        metrics=[  # named as training_log.EPOCH_METRICS
            keras.metrics.SparseCategoricalAccuracy(name="pixel_accuracy"),
            keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"),
        ],
        jit_compile=train.jit_compile,
    )


def train_model(
    prepared: PreparedData,
    model_config: ModelConfig,
    train: TrainConfig,
    live_dir: Path | None = None,
    backup_dir: Path | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and fit a U-Net on the prepared data; return it and its history (metric → value per epoch).

    With `live_dir`, DVCLive logs every epoch there. With `backup_dir`, the state after each
    epoch is backed up; a run killed midway resumes from its last complete epoch, and the
    backup is removed when training completes.
    """
    steps_per_epoch = prepared.steps_per_epoch(train.batch_size)
    strategy = distribution_strategy(train.distribute)
    with strategy.scope():
        model = build_unet(prepared.image_size, prepared.num_classes, model_config, prepared.normalization)
        compile_model(model, prepared.num_classes, train, steps_per_epoch)
    log.info("U-Net with %d parameters, %d replica(s)", model.count_params(), strategy.num_replicas_in_sync)
    start_epoch = resume_epoch(backup_dir, run_fingerprint(prepared, model_config, train)) if backup_dir else 0
    callbacks: list[keras.callbacks.Callback] = []
    if train.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_mean_iou", mode="max", patience=train.early_stopping_patience, restore_best_weights=True
            )
        )
    if live_dir is not None:
        callbacks.append(training_log.live_callback(live_dir, start_epoch))
    if backup_dir is not None:  # after DVCLive: an epoch is backed up only once it is logged
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    history = model.fit(
        training_dataset(prepared, train, start_epoch),
        steps_per_epoch=steps_per_epoch,
        validation_data=prepared.batches("val", train.batch_size),
        epochs=train.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded, so that a resumed run sees the same batches
        verbose=2,
    )
    return model, history.history


def run_fingerprint(prepared: PreparedData, model_config: ModelConfig, train: TrainConfig) -> str:
    """A digest of everything that shapes a training run, so a backup is never resumed by another run."""
    manifest = dataclasses.asdict(dataclasses.replace(prepared, folder=Path(".")))
    settings = {"manifest": manifest, "model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def resume_epoch(backup_dir: Path, fingerprint: str) -> int:
    """The epoch to resume at: the backup's, if it was made by this very run; otherwise 0.

    A backup left by a run with other params or data is removed.
    """
    stamp = backup_dir / "run.json"
    epochs = training_log.backed_up_epochs(backup_dir)
    if stamp.exists() and json.loads(stamp.read_text()).get("fingerprint") == fingerprint and epochs is not None:
        log.info("resuming from the backup in %s after epoch %d", backup_dir, epochs)
        return epochs
    shutil.rmtree(backup_dir, ignore_errors=True)
    backup_dir.mkdir(parents=True)
    atomic.write_json(stamp, {"fingerprint": fingerprint})
    return 0
