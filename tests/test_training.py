"""Training in-process (training.py): a tiny folder dataset trained and evaluated, XLA, and the float32 model
returned after bfloat16 training."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segpipe.config import params_from_dict
from segpipe.evaluation import confusion_on
from segpipe.inference import keras_predictor
from segpipe.metrics import segmentation_scores
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
