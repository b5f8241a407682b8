"""Input pipelines, distribution, and the training loop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from segpipe import augment, losses, tfrecords, training_log
from segpipe import model as model_module
from segpipe.augment import augment_batch
from segpipe.config import LrSchedule, ModelConfig, TrainConfig
from segpipe.distribution import (
    build_from_specs,
    check_every_replica_gets_examples,
    distribution_strategy,
    sharded_by_data,
)
from segpipe.errors import PipelineError
from segpipe.losses import loss_for
from segpipe.model import build_unet
from segpipe.precision import precision_policy
from segpipe.prepared import SPLITS, PreparedData

log = logging.getLogger(__name__)


def configure_runtime(train: TrainConfig) -> str:
    """Seed everything and set determinism; return the device training will use."""
    keras.utils.set_random_seed(train.seed)
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    device = f"GPU ({len(gpus)} visible)" if gpus else "CPU"
    log.info("training on %s", device)
    return device


STREAMED_SHARDS = 4  # shards read at once when streaming: their examples mix before the window shuffle


def training_dataset(prepared: PreparedData, train: TrainConfig, start_epoch: int = 0) -> tf.data.Dataset:
    """Endless augmented batches, epoch after epoch, starting at `start_epoch`.

    Every batch and its augmentation seed are fixed by `train.seed` and the epoch, so epoch k sees
    the same batches whether training started at epoch 0 or resumed at k. A train split of up to
    `train.in_memory_max_mb` is held in memory; a larger one is streamed from its shards.
    """
    steps = prepared.steps_per_epoch(train.batch_size)
    if prepared.megabytes("train") <= train.in_memory_max_mb:
        batches = _in_memory_batches(prepared, train, start_epoch)
    else:
        log.info(
            "streaming the train split from its shards (%.3g MB > train.in_memory_max_mb = %g)",
            prepared.megabytes("train"),
            train.in_memory_max_mb,
        )
        batches = _streamed_batches(prepared, train, start_epoch)
    seeds = tf.data.Dataset.random(seed=train.seed).skip(start_epoch * steps)

    def augmented(batch: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_batch(*batch, seed, train.augment)

    return (
        tf.data.Dataset.zip(batches, seeds)
        .map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _in_memory_batches(prepared: PreparedData, train: TrainConfig, start_epoch: int) -> tf.data.Dataset:
    """Batches gathered from the split held in memory by a seeded stream of shuffled indices.

    Skipping to `start_epoch` only skips indices, so it costs no image work.
    """
    images, masks = prepared.arrays("train")
    with tf.device("/cpu:0"):
        images, masks = tf.Variable(images, trainable=False), tf.Variable(masks, trainable=False)
    count = int(images.shape[0])
    order = tf.data.Dataset.range(count).shuffle(count, seed=train.seed, reshuffle_each_iteration=True)
    indices = order.batch(train.batch_size).repeat().skip(start_epoch * prepared.steps_per_epoch(train.batch_size))
    return indices.map(lambda batch: (tf.gather(images, batch), tf.gather(masks, batch)))


def _streamed_batches(prepared: PreparedData, train: TrainConfig, start_epoch: int) -> tf.data.Dataset:
    """Batches read from the shards. Epoch e reads them in an order drawn from (train.seed, e),
    STREAMED_SHARDS at a time, and shuffles each window of `train.in_memory_max_mb` of examples
    with a seed drawn from (train.seed, e, window).

    Every draw is stateless, so epoch e is the same whether the run started at 0 or resumed at e.
    """
    shards = tf.constant([str(path) for path in prepared.shard_paths("train")])
    window = max(1, int(train.in_memory_max_mb * 2**20 // prepared.example_bytes))
    size = prepared.image_size

    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        seed = tf.stack([tf.constant(train.seed, tf.int64), number])
        order = tf.random.experimental.stateless_shuffle(shards, seed=seed)
        records = tfrecords.interleaved_records(order, min(STREAMED_SHARDS, len(prepared.shard_paths("train"))))

        def shuffled(index: tf.Tensor, records: tf.Tensor) -> tf.Tensor:
            return tf.random.experimental.stateless_shuffle(
                records, tf.random.experimental.stateless_fold_in(seed, index)
            )

        examples = records.batch(window).enumerate().map(shuffled).unbatch()
        parse = lambda record: tfrecords.parse_example(record, size)  # noqa: E731
        return examples.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(train.batch_size)

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch)


def _constant_rate(train: TrainConfig, steps_per_epoch: int) -> float:
    return train.learning_rate


def _warmup_cosine(train: TrainConfig, steps_per_epoch: int) -> keras.optimizers.schedules.LearningRateSchedule:
    if train.warmup < train.warmup_epochs:
        log.info(
            "warm-up capped at %d epochs (train.epochs - 1, leaving the cosine decay one), "
            "not train.warmup_epochs = %d",
            train.warmup,
            train.warmup_epochs,
        )
    warmup = train.warmup * steps_per_epoch
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


def compile_model(
    model: keras.Model, num_classes: int, train: TrainConfig, steps_per_epoch: int, dtype_policy: str = "float32"
) -> None:
    optimizer = keras.optimizers.Adam(LR_SCHEDULES[train.lr_schedule](train, steps_per_epoch))
    if dtype_policy == "mixed_float16":  # float16 gradients underflow without loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=loss_for(train.loss_function),
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
    backup is removed when training completes. A diverging run raises `TrainingDiverged`; an interrupted
    one re-raises its `KeyboardInterrupt` with a note saying where it stopped and what a rerun does.
    `strategy` defaults to `distribution_strategy(train)`; a multi-worker one keeps no
    backup, and only its chief should be given `live_dir` (DVCLive's callback writes on any worker).
    """
    steps_per_epoch = prepared.steps_per_epoch(train.batch_size)
    strategy = strategy or distribution_strategy(train)
    multi_worker = strategy.cluster_resolver is not None and bool(strategy.cluster_resolver.cluster_spec().jobs)
    if multi_worker:
        check_every_replica_gets_examples(prepared, train.batch_size, strategy.num_replicas_in_sync)
    if multi_worker and backup_dir is not None:
        # Keras 3's BackupAndRestore is not multi-worker aware (every worker writes, then deletes, the same
        # folder), and a resume needs every worker at the same epoch and weights: a killed run starts over.
        log.warning("multi-worker training keeps no backup: a killed run starts again at epoch 1")
        backup_dir = None
    policy = precision_policy(train.mixed_precision)
    with strategy.scope():
        model = build_unet(prepared.image_size, prepared.num_classes, model_config, prepared.normalization, policy)
        compile_model(model, prepared.num_classes, train, steps_per_epoch, policy)
    if multi_worker:
        # Keras 3 keeps each replica's batch-norm moving statistics apart (aggregation "none"): every worker
        # would end with its own. Synchronized, they follow the global batch, as in one process, and agree.
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    log.info(
        "U-Net with %d parameters, %d replica(s), dtype policy %s",
        model.count_params(),
        strategy.num_replicas_in_sync,
        policy,
    )
    fingerprint = run_fingerprint(prepared, model_config, train, policy)
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
        build_from_specs(model, strategy, batches.element_spec)
    try:
        history = model.fit(
            batches,
            steps_per_epoch=steps_per_epoch,
            validation_data=sharded_by_data(prepared.batches("val", train.batch_size)),
            epochs=train.epochs,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded, so that a resumed run sees the same batches
            verbose=2,
        )
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: runner's one line says what a rerun does
        epoch = guard.epoch or start_epoch + 1
        stop.add_note(training_log.stop_note(backup_dir, epoch, train.epochs, resumable=exact))
        raise
    except PEER_FAILURES as error:
        if not multi_worker:
            raise
        raise PipelineError(
            f"training stopped in epoch {guard.epoch or 1} of {train.epochs}: another worker of the TF_CONFIG "
            f"cluster stopped or cannot be reached ({_first_cause(error)}); start the train stage again on every "
            "worker (a run over several workers keeps no backup: it starts at epoch 1)"
        ) from None
    if guard.diverged:
        if backup_dir is not None:
            training_log.discard_backup(backup_dir)  # never resume a diverged run
        epoch, loss = guard.diverged
        raise TrainingDiverged(
            f"training diverged in epoch {epoch} (loss {loss:g}): no model saved; "
            f"lower train.learning_rate (now {train.learning_rate:g})"
        )
    if policy != "float32":  # evaluation and serving compute in float32, with the trained (float32) weights
        model = float32_twin(model, prepared, model_config)
    return model, history.history


# What a multi-worker step raises when a peer stopped (killed, interrupted, its machine gone) or stopped answering.
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)


def _first_cause(error: tf.errors.OpError) -> str:
    """TensorFlow's reason for aborting the collectives ("Collective ops is aborted by: Socket closed"), on one
    line (a list of tasks that follows it joined on), or the error's kind."""
    lines = str(error.message).splitlines()
    start = next((i for i, line in enumerate(lines) if "aborted by" in line), None)
    if start is None:
        return type(error).__name__
    cause = [lines[start].strip()]
    for line in lines[start + 1 :]:
        if not cause[-1].endswith(":") or not line.strip():
            break
        cause.append(line.strip())
    return " ".join(cause)


def float32_twin(model: keras.Model, prepared: PreparedData, model_config: ModelConfig) -> keras.Model:
    """The same U-Net computing in float32, holding `model`'s weights (kept in float32 by any policy)."""
    twin = build_unet(prepared.image_size, prepared.num_classes, model_config, prepared.normalization)
    twin.set_weights(model.get_weights())
    return twin


def run_fingerprint(prepared: PreparedData, model_config: ModelConfig, train: TrainConfig, dtype_policy: str) -> str:
    """A digest of everything that shapes a training run: the prepared data's description and bytes,
    the params and the code that defines the model, the loss, augmentation and the training step.
    A backup is resumed only by the run with the same digest."""
    digest = hashlib.sha256()
    manifest = dataclasses.asdict(dataclasses.replace(prepared, folder=Path(".")))
    settings = {
        "manifest": manifest,
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(train),
        "dtype_policy": dtype_policy,  # what train.mixed_precision: auto resolved to on this machine
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in SPLITS:
        for shard in prepared.shard_paths(name):
            digest.update(shard.read_bytes())
    for module in (augment, losses, model_module, tfrecords, sys.modules[__name__]):
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
