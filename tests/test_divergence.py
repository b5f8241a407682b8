"""The divergence guard: a non-finite or exploded batch loss stops training and names its epoch."""

from __future__ import annotations

import math

import keras
import pytest

from segpipe.divergence import DivergenceGuard


def guard_fed(losses_by_epoch: list[list[float]]) -> DivergenceGuard:
    """A divergence guard given each batch's loss as `fit` gives it, epoch by epoch, until it stops training."""
    guard = DivergenceGuard()
    guard.set_model(keras.Sequential())
    guard.model.stop_training = False
    for epoch, losses in enumerate(losses_by_epoch):
        guard.on_epoch_begin(epoch)
        for batch, loss in enumerate(losses):
            guard.on_train_batch_end(batch, {"loss": loss})
            if guard.model.stop_training:
                return guard
    return guard


def test_finite_losses_up_to_1000_times_the_first_batch_s_let_training_go_on():
    guard = guard_fed([[2.0, 0.5, 2000.0], [1999.0, 0.001]])
    assert guard.diverged is None
    assert guard.model.stop_training is False


@pytest.mark.parametrize("loss", [math.nan, math.inf, 2000.5], ids=["nan", "infinite", "above-1000x"])
def test_a_non_finite_or_exploded_loss_stops_training_naming_its_epoch(loss):
    guard = guard_fed([[2.0, 1.0], [3.0, loss, 1.0]])
    assert guard.model.stop_training is True
    epoch, logged = guard.diverged
    assert epoch == 2 and (logged == loss or math.isnan(logged) and math.isnan(loss))
