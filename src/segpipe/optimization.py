"""How the model learns: the learning-rate schedules `train.lr_schedule` names, the optimizer, the loss
and the metrics logged every epoch (`compile_model`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import keras

from segpipe.config import LrSchedule, TrainConfig
from segpipe.losses import loss_for

log = logging.getLogger(__name__)


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
