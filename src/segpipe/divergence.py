"""Stopping a run whose loss diverges, before it saves a useless model."""

from __future__ import annotations

import math

import keras

from segpipe.errors import PipelineError


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
