"""train.freeze_encoder_epochs: the decoder is trained first with the backbone frozen (its batch norm too),
then the whole model; under mixed precision as well."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from segpipe.config import params_from_dict
from segpipe.encoders import ENCODER
from segpipe.model import build_unet
from segpipe.training import train_model
from tests.helpers import TINY, merged, write_tiny_prepared

pytestmark = pytest.mark.slow  # trainings

WEIGHTS = "models/pretrained/mobilenet_v2.weights.h5"


@pytest.fixture
def start(tmp_path, monkeypatch):
    """A project folder holding tiny 32 px prepared data and a MobileNetV2 weights file (the encoder's start)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "pretrained").mkdir(parents=True)
    keras.utils.set_random_seed(3)
    trunk = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    trunk.save_weights(WEIGHTS)
    return write_tiny_prepared(tmp_path / "prepared", per_split=2, size=32), trunk


def params(project_params, epochs: int, freeze: int, precision: str = "off"):
    changes = {
        "model": {"encoder": "mobilenet_v2", "encoder_weights": WEIGHTS, "depth": 1},
        "train": {"epochs": epochs, "freeze_encoder_epochs": freeze, "batch_size": 2, "mixed_precision": precision},
    }
    return params_from_dict(merged(project_params, merged(TINY, changes)))


def unchanged(encoder: keras.Model, trunk: keras.Model) -> bool:
    """Whether every weight of `encoder` (batch-norm statistics included) still equals the trunk's."""
    return all(
        np.array_equal(ours, theirs)
        for layer in encoder.layers
        if layer.weights
        for ours, theirs in zip(layer.get_weights(), trunk.get_layer(layer.name).get_weights(), strict=True)
    )


def test_a_frozen_encoder_keeps_its_weights_and_batch_norm_statistics_while_the_decoder_learns(start, project_params):
    prepared, trunk = start
    config = params(project_params, epochs=1, freeze=1)
    keras.utils.set_random_seed(0)
    untrained = build_unet(prepared.image_size, prepared.num_classes, config.model, prepared.normalization)
    keras.utils.set_random_seed(0)
    model, _ = train_model(prepared, config.model, config.train)
    encoder = model.get_layer(ENCODER)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in encoder.layers)
    assert unchanged(untrained.get_layer(ENCODER), trunk)
    assert unchanged(encoder, trunk)
    assert encoder.trainable  # as saved: the model is whole again
    logits = [model.get_layer("logits").get_weights()[0], untrained.get_layer("logits").get_weights()[0]]
    assert not np.array_equal(*logits)


@pytest.mark.parametrize("precision", ["off", "bfloat16"])
def test_after_the_frozen_epochs_the_encoder_is_trained_too(start, project_params, caplog, precision):
    prepared, trunk = start
    config = params(project_params, epochs=2, freeze=1, precision=precision)
    with caplog.at_level(logging.INFO, logger="segpipe.training"):
        model, history = train_model(prepared, config.model, config.train)
    assert not unchanged(model.get_layer(ENCODER), trunk)
    assert model.compute_dtype == "float32"
    assert len(history["loss"]) == 2
    assert [record.getMessage() for record in caplog.records if "encoder" in record.getMessage()] == [
        "epoch 1: encoder frozen",
        "epoch 2: encoder trained from now on",
    ]
