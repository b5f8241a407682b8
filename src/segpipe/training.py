"""Training a U-Net on the prepared data: `train_model` builds, compiles and fits it, one step at a time.

Its pieces live apart: the batches (input_pipeline.py), the optimizer, loss and metrics
(optimization.py), stopping a diverging run (divergence.py), resuming a killed one (backup.py),
DVCLive's logs (training_log.py) and the strategy for several devices or machines (distribution.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from segpipe import backup, training_log
from segpipe.config import ModelConfig, TrainConfig
from segpipe.distribution import check_every_replica_gets_examples, distribution_strategy, sharded_by_data
from segpipe.divergence import DivergenceGuard, TrainingDiverged
from segpipe.encoders import ENCODER
from segpipe.errors import PipelineError
from segpipe.input_pipeline import training_dataset
from segpipe.keras_workarounds import build_from_specs
from segpipe.model import build_unet
from segpipe.optimization import compile_model
from segpipe.precision import precision_policy
from segpipe.prepared import PreparedData

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


@dataclass(frozen=True)
class _Run:
    """What one call of `train_model` trains with, decided before `fit`."""

    strategy: tf.distribute.Strategy
    multi_worker: bool
    policy: str  # the dtype policy train.mixed_precision resolved to
    backup_dir: Path | None  # None: no backup kept
    exact: bool  # whether a resumed run equals an uninterrupted one (no dropout, no early stopping)


def train_model(
    prepared: PreparedData,
    model_config: ModelConfig,
    train: TrainConfig,
    live_dir: Path | None = None,
    backup_dir: Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Build and fit a U-Net on the prepared data; return it (computing in float32) and its history
    (metric → value per epoch).

    With `live_dir`, DVCLive logs every epoch there. With `backup_dir`, the state after each
    epoch is backed up; a run killed midway resumes from its last complete epoch, and the
    backup is removed when training completes. A diverging run raises `TrainingDiverged`; an interrupted
    one re-raises its `KeyboardInterrupt` with a note saying where it stopped and what a rerun does.
    `strategy` defaults to `distribution_strategy(train)`; a multi-worker one keeps no
    backup, and only its chief should be given `live_dir` (DVCLive's callback writes on any worker).
    """
    run = _plan_run(prepared, model_config, train, backup_dir, strategy or distribution_strategy(train))
    model = _compiled_unet(prepared, model_config, train, run)
    fingerprint = backup.run_fingerprint(prepared, model_config, train, run.policy)
    start_epoch = backup.resume_epoch(run.backup_dir, fingerprint, run.exact) if run.backup_dir else 0
    guard = DivergenceGuard()
    callbacks = [guard, *_callbacks(train, live_dir, run.backup_dir, fingerprint, start_epoch)]
    if train.freeze_encoder_epochs:
        callbacks.insert(0, EncoderFreeze(model.get_layer(ENCODER), train.freeze_encoder_epochs))
    history = _fit(model, prepared, train, run, callbacks, guard, start_epoch)
    if guard.diverged:
        if run.backup_dir is not None:
            backup.discard_backup(run.backup_dir)  # never resume a diverged run
        epoch, loss = guard.diverged
        raise TrainingDiverged(
            f"training diverged in epoch {epoch} (loss {loss:g}): no model saved; "
            f"lower train.learning_rate (now {train.learning_rate:g})"
        )
    if run.policy != "float32":  # evaluation and serving compute in float32, with the trained (float32) weights
        model = float32_twin(model, prepared, model_config)
    return model, history


def _plan_run(
    prepared: PreparedData,
    model_config: ModelConfig,
    train: TrainConfig,
    backup_dir: Path | None,
    strategy: tf.distribute.Strategy,
) -> _Run:
    multi_worker = strategy.cluster_resolver is not None and bool(strategy.cluster_resolver.cluster_spec().jobs)
    if multi_worker:
        check_every_replica_gets_examples(prepared, train.batch_size, strategy.num_replicas_in_sync)
        if backup_dir is not None:
            # Keras 3's BackupAndRestore is not multi-worker aware (every worker writes, then deletes, the same
            # folder), and a resume needs every worker at the same epoch and weights: a killed run starts over.
            log.warning("multi-worker training keeps no backup: a killed run starts again at epoch 1")
            backup_dir = None
    exact = model_config.dropout == 0 and train.early_stopping_patience == 0
    return _Run(strategy, multi_worker, precision_policy(train.mixed_precision), backup_dir, exact)


def _compiled_unet(prepared: PreparedData, model_config: ModelConfig, train: TrainConfig, run: _Run) -> keras.Model:
    with run.strategy.scope():
        model = build_unet(prepared.image_size, prepared.num_classes, model_config, prepared.normalization, run.policy)
        compile_model(model, prepared.num_classes, train, prepared.steps_per_epoch(train.batch_size), run.policy)
        if train.freeze_encoder_epochs:  # for every variable, those the encoder gets when it is trained too
            model.optimizer.build(model.trainable_variables)
    if run.multi_worker:
        # Keras 3 keeps each replica's batch-norm moving statistics apart (aggregation "none"): every worker
        # would end with its own. Synchronized, they follow the global batch, as in one process, and agree.
        for layer in _all_layers(model):  # a backbone's are inside the nested encoder model
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True
    log.info(
        "U-Net with %d parameters, %d replica(s), dtype policy %s",
        model.count_params(),
        run.strategy.num_replicas_in_sync,
        run.policy,
    )
    return model


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers and those of the models nested in it."""
    found = []
    for layer in model.layers:
        found += [layer, *(_all_layers(layer) if isinstance(layer, keras.Model) else [])]
    return found


class EncoderFreeze(keras.callbacks.Callback):
    """The encoder frozen for the first `epochs` epochs (its batch norm in inference mode too: Keras's
    `trainable = False`), trained from then on. The phase is a function of the epoch alone, so a resumed run
    is in the right one; the saved model has its encoder trainable either way."""

    def __init__(self, encoder: keras.Model, epochs: int):
        super().__init__()
        self.encoder, self.epochs = encoder, epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        trainable = epoch >= self.epochs
        if self.encoder.trainable != trainable:
            self.encoder.trainable = trainable
            self.model.make_train_function(force=True)  # traced again: the step's variables changed
            log.info("epoch %d: encoder %s", epoch + 1, "trained from now on" if trainable else "frozen")

    def on_train_end(self, logs: dict | None = None) -> None:
        self.encoder.trainable = True


def _callbacks(
    train: TrainConfig, live_dir: Path | None, backup_dir: Path | None, fingerprint: str, start_epoch: int
) -> list[keras.callbacks.Callback]:
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
        callbacks.append(backup.BackupStamp(backup_dir, fingerprint))
    return callbacks


def _fit(
    model: keras.Model,
    prepared: PreparedData,
    train: TrainConfig,
    run: _Run,
    callbacks: list[keras.callbacks.Callback],
    guard: DivergenceGuard,
    start_epoch: int,
) -> dict[str, list[float]]:
    """`model.fit` from `start_epoch`; an interruption or a lost peer explained in one line."""
    batches = sharded_by_data(training_dataset(prepared, train, start_epoch))
    if run.multi_worker:
        build_from_specs(model, run.strategy, batches.element_spec)
    try:
        return model.fit(
            batches,
            steps_per_epoch=prepared.steps_per_epoch(train.batch_size),
            validation_data=sharded_by_data(prepared.batches("val", train.batch_size)),
            epochs=train.epochs,
            callbacks=callbacks,
            shuffle=False,  # the dataset shuffles itself, seeded, so that a resumed run sees the same batches
            verbose=2,
        ).history
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: runner's one line says what a rerun does
        epoch = guard.epoch or start_epoch + 1
        stop.add_note(backup.stop_note(run.backup_dir, epoch, train.epochs, resumable=run.exact))
        raise
    except PEER_FAILURES as error:
        if not run.multi_worker:
            raise
        raise PipelineError(
            f"training stopped in epoch {guard.epoch or 1} of {train.epochs}: another worker of the TF_CONFIG "
            f"cluster stopped or cannot be reached ({_first_cause(error)}); start the train stage again on every "
            "worker (a run over several workers keeps no backup: it starts at epoch 1)"
        ) from None


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
    twin = build_unet(
        prepared.image_size, prepared.num_classes, model_config, prepared.normalization, with_encoder_weights=False
    )
    twin.set_weights(model.get_weights())
    return twin


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of the model's weights, in order: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()
