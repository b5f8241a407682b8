"""Segmentation losses on float32 logits and integer masks."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from segpipe.config import LossName
from segpipe.keras_workarounds import per_replica_loss


@keras.saving.register_keras_serializable(package="segpipe")
def soft_dice_loss(y_true, logits):
    """1 − mean over classes of the soft Dice score of the batch (classes absent everywhere count as 1)."""
    classes = ops.shape(logits)[-1]
    probs = ops.softmax(logits, axis=-1)
    truth = ops.one_hot(ops.cast(ops.squeeze(y_true, -1), "int32"), classes)
    overlap = ops.sum(probs * truth, axis=(0, 1, 2))
    total = ops.sum(probs, axis=(0, 1, 2)) + ops.sum(truth, axis=(0, 1, 2))
    return 1.0 - ops.mean((2.0 * overlap + 1.0) / (total + 1.0))


@keras.saving.register_keras_serializable(package="segpipe")
def cross_entropy_dice_loss(y_true, logits):
    """Pixel-mean sparse cross-entropy plus soft Dice: Dice lifts the small classes (the border)."""
    cross_entropy = ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True))
    return per_replica_loss(cross_entropy + soft_dice_loss(y_true, logits))


LOSSES: dict[LossName, Callable[[], Callable]] = {
    "cross_entropy": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    "cross_entropy_dice": lambda: cross_entropy_dice_loss,
}


def loss_for(name: LossName) -> Callable:
    """The loss `train.loss_function` names, called as loss(masks, logits)."""
    return LOSSES[name]()
