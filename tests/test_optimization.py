"""Compiling the model (optimization.py): the learning-rate schedules (warm-up, then cosine decay, for runs of
any length) and loss scaling for float16."""

from __future__ import annotations

import keras

from segpipe.config import params_from_dict
from segpipe.model import build_unet
from segpipe.optimization import LR_SCHEDULES, compile_model
from segpipe.prepared import Normalization
from tests.helpers import merged


def cosine_rates(project_params, train: dict, steps: list[int]) -> list[float]:
    """The cosine schedule's learning rate at each of `steps`, with 10 steps per epoch."""
    params = params_from_dict(merged(project_params, {"train": {"learning_rate": 0.002, **train}}))
    schedule = LR_SCHEDULES["cosine"](params.train, 10)
    return [round(float(schedule(step)), 6) for step in steps]


def test_a_one_epoch_run_skips_the_default_warm_up_and_decays_from_the_peak_rate(project_params, caplog):
    caplog.set_level("INFO")
    assert cosine_rates(project_params, {"epochs": 1, "warmup_epochs": 1}, [0, 5, 10]) == [0.002, 0.001, 0.0]
    assert caplog.messages == [
        "warm-up capped at 0 epochs (train.epochs - 1, leaving the cosine decay one), not train.warmup_epochs = 1"
    ]


def test_a_longer_run_warms_up_for_train_warmup_epochs_then_decays(project_params):
    assert cosine_rates(project_params, {"epochs": 3, "warmup_epochs": 1}, [0, 5, 10, 20, 30]) == [
        0.0,
        0.001,
        0.002,
        0.001,
        0.0,
    ]


NORMALIZATION = Normalization(scale=1 / 255, offset=0.0)


def test_float16_is_trained_with_loss_scaling(tiny_config):
    model = build_unet(16, 3, tiny_config.model, NORMALIZATION, "mixed_float16")
    compile_model(model, 3, tiny_config.train, steps_per_epoch=2, dtype_policy="mixed_float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
