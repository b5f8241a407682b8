"""Input pipelines, distribution, and the training loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from segpipe import augment, losses, training_log
from segpipe import model as model_module
from segpipe.augment import augment_batch
from segpipe.config import Distribute, LrSchedule, ModelConfig, TrainConfig
from segpipe.errors import ConfigError, PipelineError
from segpipe.losses import loss_for
from segpipe.model import build_unet
from segpipe.prepared import SPLITS, PreparedData

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


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` as Keras 3.15 calls it (keras-team/keras#20585: `fit` fails under it):
    after each step, `fit` averages the step's logs, scalars, with `reduce("MEAN", value, axis=0)`, which is
    invalid for a scalar. Such a value is averaged across replicas only, as Keras does under `MirroredStrategy`."""

    def reduce(self, reduce_op, value, axis):
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def _cluster_or_local_gpus() -> tf.distribute.Strategy:
    if json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"):
        return _MultiWorkerMirroredStrategy()
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
    """The strategy `train.distribute` asks for (see params.yaml).

    A `MultiWorkerMirroredStrategy` (auto with a `TF_CONFIG` cluster) must be created before
    TensorFlow starts its runtime, and only once: call this first, then pass it to `train_model`.
    """
    return STRATEGIES[kind]()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: true unless it is one of the other workers of a
    `TF_CONFIG` cluster, whose chief is its `chief` task if it has one, else worker 0 (TensorFlow's rule)."""
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return True
    if "chief" in resolver.cluster_spec().jobs:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with auto-sharding by data, for a multi-worker strategy (no effect otherwise).

    The strategy splits each batch of `train.batch_size` into one slice per worker; every worker runs
    the same seeded pipeline and keeps only its slice, so the workers see different examples and
    together the whole batch. The default (AUTO) shards by FILE where it can: the train split (indices
    into memory) has no files and falls back to DATA, but the validation shards would be dealt out by
    file, which fails with fewer files than workers and gives workers different numbers of batches
    when the files hold uneven counts.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


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


class TrainingDiverged(PipelineError):
    """The loss became non-finite or exploded: the run is stopped and no model is kept."""


class DivergenceGuard(keras.callbacks.Callback):
    """Stop at the first batch whose loss is not finite or exceeds 1000× the first batch's loss."""

    def __init__(self) -> None:
        super().__init__()
        self.first_loss: float | None = None
        self.diverged: tuple[int, float] | None = None  # (epoch from 1, loss)
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        self.first_loss = self.first_loss or (loss if math.isfinite(loss) and loss > 0 else None)
        if not math.isfinite(loss) or (self.first_loss and loss > 1000 * self.first_loss):
            self.diverged = (self.epoch, loss)
            self.model.stop_training = True


def train_model(
    prepared: PreparedData,
    model_config: ModelConfig,
    train: TrainConfig,
    live_dir: Path | None = None,
    backup_dir: Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and fit a U-Net on the prepared data; return it and its history (metric → value per epoch).

    With `live_dir`, DVCLive logs every epoch there. With `backup_dir`, the state after each
    epoch is backed up; a run killed midway resumes from its last complete epoch, and the
    backup is removed when training completes. A diverging run raises `TrainingDiverged`.
    `strategy` defaults to `distribution_strategy(train.distribute)`; a multi-worker one keeps no
    backup, and only its chief should be given `live_dir` (DVCLive's callback writes on any worker).
    """
    steps_per_epoch = prepared.steps_per_epoch(train.batch_size)
    strategy = strategy or distribution_strategy(train.distribute)
    multi_worker = strategy.cluster_resolver is not None and bool(strategy.cluster_resolver.cluster_spec().jobs)
    if multi_worker:
        check_every_replica_gets_examples(prepared, train.batch_size, strategy.num_replicas_in_sync)
    if multi_worker and backup_dir is not None:
        # Keras 3's BackupAndRestore is not multi-worker aware (every worker writes, then deletes, the same
        # folder), and a resume needs every worker at the same epoch and weights: a killed run starts over.
        log.warning("multi-worker training keeps no backup: a killed run starts again at epoch 1")
        backup_dir = None
    with strategy.scope():
        model = build_unet(prepared.image_size, prepared.num_classes, model_config, prepared.normalization)
        compile_model(model, prepared.num_classes, train, steps_per_epoch)
    if multi_worker:
        # Keras 3 keeps each replica's batch-norm moving statistics apart (aggregation "none"): every worker
        # would end with its own. Synchronized, they follow the global batch, as in one process, and agree.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    log.info("U-Net with %d parameters, %d replica(s)", model.count_params(), strategy.num_replicas_in_sync)
    fingerprint = run_fingerprint(prepared, model_config, train)
    exact = model_config.dropout == 0 and train.early_stopping_patience == 0
    start_epoch = resume_epoch(backup_dir, fingerprint, exact) if backup_dir else 0
    guard = DivergenceGuard()
    callbacks: list[keras.callbacks.Callback] = [guard]
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
        callbacks.append(training_log.BackupStamp(backup_dir, fingerprint))
    batches = sharded_by_data(training_dataset(prepared, train, start_epoch))
    if multi_worker:
        _build_from_specs(model, strategy, batches.element_spec)
    history = model.fit(
        batches,
        steps_per_epoch=steps_per_epoch,
        validation_data=sharded_by_data(prepared.batches("val", train.batch_size)),
        epochs=train.epochs,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself, seeded, so that a resumed run sees the same batches
        verbose=2,
    )
    if guard.diverged:
        if backup_dir is not None:
            training_log.discard_backup(backup_dir)  # never resume a diverged run
        epoch, loss = guard.diverged
        raise TrainingDiverged(
            f"training diverged in epoch {epoch} (loss {loss:g}): no model saved; "
            f"lower train.learning_rate (now {train.learning_rate:g})"
        )
    return model, history.history


def check_every_replica_gets_examples(prepared: PreparedData, batch_size: int, replicas: int) -> None:
    """Refuse a batch size that would leave a replica of a multi-worker run without examples in some step.

    Each batch is split between the replicas; a batch, or the last (partial) batch of the train or
    validation split, smaller than the number of replicas gives some of them an empty slice, on which
    TensorFlow's collectives fail.
    """
    for split in ("train", "val"):
        count = prepared.count(split)
        smallest = count % batch_size or batch_size  # the last batch
        if count and smallest < replicas:
            raise ConfigError(
                f"train.batch_size {batch_size} leaves some of the {replicas} replicas without examples: the "
                f"{split} split ({count} examples) ends with a batch of {smallest}; choose a batch size whose "
                f"last batches of train and val have at least {replicas} examples"
            )


def _build_from_specs(model: keras.Model, strategy: tf.distribute.Strategy, specs: tuple[tf.TensorSpec, ...]) -> None:
    """Work around keras-team/keras#20585 (Keras 3.15): before their first step, `fit` and `evaluate` draw a
    batch and pass the whole (images, masks) pair to `Strategy.reduce`, only to learn the shapes from which
    to build the metrics and the optimizer; `MultiWorkerMirroredStrategy.reduce` takes one tensor, not a
    pair, and fails. Build from the dataset's element specs instead: same shapes, no collective, and no
    batch drawn (which would also have moved the seeded shuffle on to its next permutation)."""
    build = model._symbolic_build

    def maybe_symbolic_build(iterator=None, data_batch=None) -> None:
        with strategy.scope():
            build(data_batch=specs)

    model._maybe_symbolic_build = maybe_symbolic_build


def run_fingerprint(prepared: PreparedData, model_config: ModelConfig, train: TrainConfig) -> str:
    """A digest of everything that shapes a training run: the prepared data's description and bytes,
    the params and the code that defines the model, the loss, augmentation and the training step.
    A backup is resumed only by the run with the same digest."""
    digest = hashlib.sha256()
    manifest = dataclasses.asdict(dataclasses.replace(prepared, folder=Path(".")))
    settings = {"manifest": manifest, "model": dataclasses.asdict(model_config), "train": dataclasses.asdict(train)}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in SPLITS:
        for shard in prepared.shard_paths(name):
            digest.update(shard.read_bytes())
    for module in (augment, losses, model_module, sys.modules[__name__]):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def resume_epoch(backup_dir: Path, fingerprint: str, exact: bool = True) -> int:
    """The epoch to resume at: the backup's, if it is this very run's and intact; otherwise 0.

    A backup of another run, an incomplete or corrupt one, or any backup when resuming would not be
    exact (`exact` false: dropout's random state and early stopping's counters are not backed up),
    is discarded with a warning and training starts over.
    """
    epochs, problem = training_log.restore_backup(backup_dir, fingerprint)
    if epochs and exact:
        log.info("resuming from the backup in %s after epoch %d", backup_dir, epochs)
        return epochs
    if problem:
        log.warning("discarding the backup in %s: %s; training starts at epoch 1", backup_dir, problem)
    elif epochs:
        log.warning(
            "discarding the backup in %s: with model.dropout > 0 or train.early_stopping_patience > 0 a resumed "
            "run would not equal an uninterrupted one; training starts at epoch 1",
            backup_dir,
        )
    training_log.start_backup(backup_dir, fingerprint)
    return 0


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights, in order: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()
