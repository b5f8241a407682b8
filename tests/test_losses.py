"""The Dice term: zero for a perfect prediction, and added on top of cross-entropy; scaled for several replicas."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from segpipe.losses import cross_entropy_dice_loss, soft_dice_loss


def logits_for(masks: np.ndarray, classes: int, confidence: float) -> np.ndarray:
    return confidence * np.eye(classes, dtype=np.float32)[masks[..., 0]]


def test_dice_of_a_confident_correct_prediction_is_zero():
    masks = np.random.default_rng(0).integers(0, 3, size=(2, 8, 8, 1))
    assert float(soft_dice_loss(masks, logits_for(masks, 3, 50.0))) == pytest.approx(0.0, abs=1e-4)


def test_dice_of_a_confident_wrong_prediction_is_near_one():
    masks = np.zeros((1, 8, 8, 1), dtype=np.int64)
    wrong = logits_for(np.ones_like(masks), 2, 50.0)
    # class 0: no overlap; class 1: predicted everywhere, absent from truth: both near 0 Dice
    assert float(soft_dice_loss(masks, wrong)) == pytest.approx(1.0, abs=0.02)


def test_combined_loss_is_cross_entropy_plus_dice():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 3, size=(2, 4, 4, 1))
    logits = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    cross_entropy = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(masks, logits))
    expected = cross_entropy + float(soft_dice_loss(masks, logits))
    assert float(cross_entropy_dice_loss(masks, logits)) == pytest.approx(expected, rel=1e-5)


def test_under_two_replicas_the_combined_loss_is_half_each_replicas_batch_loss(monkeypatch):
    """Keras sums the replicas' gradients (and logs the loss times the replicas), so a loss that is already one
    number per batch must come divided by their count, as Keras divides per-example losses itself."""
    rng = np.random.default_rng(2)
    masks = rng.integers(0, 3, size=(2, 4, 4, 1))
    logits = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    alone = float(cross_entropy_dice_loss(masks, logits))
    monkeypatch.setattr(tf.distribute, "get_strategy", lambda: SimpleNamespace(num_replicas_in_sync=2))
    assert float(cross_entropy_dice_loss(masks, logits)) == pytest.approx(alone / 2, rel=1e-6)
