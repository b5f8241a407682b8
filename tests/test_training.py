"""Training in-process (training.py): a tiny folder dataset trained and evaluated, XLA, the float32 model
returned after bfloat16 training, and train.freeze_encoder_epochs (the decoder trained first with the backbone
frozen, its batch norm too, then the whole model; under mixed precision as well)."""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np
import pytest

from segpipe.config import params_from_dict
from segpipe.encoders import ENCODER
from segpipe.evaluation import confusion_on
from segpipe.inference import keras_predictor
from segpipe.metrics import segmentation_scores
from segpipe.model import build_unet
from segpipe.preparation import prepare_dataset
from segpipe.prepared import open_prepared
from segpipe.training import train_model
from tests.helpers import TINY, merged, write_masks_folder, write_tiny_prepared

FIVE = ["sky", "road", "car", "tree", "house"]


@pytest.mark.slow
def test_a_five_class_masks_folder_trains_and_evaluates_end_to_end(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=12, num_classes=5, size=32)
    folder = {"layout": "masks", "class_names": FIVE, "test_fraction": 0.25}
    data = {"source": "folder", "input": str(root), "folder": folder}
    params = params_from_dict(merged(project_params, merged(TINY, {"data": data})))
    params.validate()
    prepared = prepare_dataset(params.data, tmp_path / "prepared")
    model, history = train_model(prepared, params.model, params.train)
    assert model.output_shape == (None, 32, 32, 5)
    assert len(history["loss"]) == 1
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
    cm = confusion_on(keras_predictor(model, tmp_path), prepared.batches("test", batch_size=4), 5)
    assert cm.shape == (5, 5) and cm.sum() == 3 * 32 * 32
    scores = segmentation_scores(cm, prepared.class_names)
    assert list(scores.iou) == FIVE
    assert open_prepared(tmp_path / "prepared").class_names == tuple(FIVE)


@pytest.mark.slow
def test_jit_compile_really_compiles_the_training_step_when_determinism_is_off(tmp_path, project_params):
    switches = {"train": {"deterministic": False, "jit_compile": True, "mixed_precision": "off"}}
    params = params_from_dict(merged(project_params, merged(TINY, switches)))
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=4)
    model, history = train_model(prepared, params.model, params.train)
    assert model.jit_compile is True  # Keras turns it off silently when it cannot compile
    assert np.isfinite(history["loss"][0])


@pytest.mark.slow
def test_a_model_trained_in_bfloat16_is_returned_computing_in_float32(tmp_path, tiny_config):
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=8)
    train = dataclasses.replace(tiny_config.train, mixed_precision="bfloat16", batch_size=4)
    model, history = train_model(prepared, tiny_config.model, train)
    assert np.isfinite(history["loss"][0])
    assert {layer.compute_dtype for layer in model.layers if layer.weights} == {"float32"}
    assert model.output_shape == (None, 8, 8, 3)


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


@pytest.mark.slow  # a training
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
@pytest.mark.slow  # a training
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
