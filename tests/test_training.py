"""Training and evaluation in-process, on data prepared from a tiny folder dataset."""

from __future__ import annotations

import numpy as np
import pytest

from segpipe.config import params_from_dict
from segpipe.evaluation import confusion_on
from segpipe.inference import keras_predictor
from segpipe.metrics import segmentation_scores
from segpipe.preparation import prepare_dataset
from segpipe.prepared import open_prepared
from segpipe.training import LR_SCHEDULES, train_model
from tests.helpers import TINY, merged, write_masks_folder, write_tiny_prepared

FIVE = ["sky", "road", "car", "tree", "house"]


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


@pytest.mark.slow
def test_a_five_class_masks_folder_trains_and_evaluates_end_to_end(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=12, num_classes=5, size=32)
    folder = {"path": str(root), "layout": "masks", "class_names": FIVE, "test_fraction": 0.25}
    params = params_from_dict(merged(project_params, merged(TINY, {"data": {"source": "folder", "folder": folder}})))
    params.validate()
    prepared = prepare_dataset(params.data, tmp_path / "prepared")
    model, history = train_model(prepared, params.model, params.train)
    assert model.output_shape == (None, 32, 32, 5)
    assert len(history["loss"]) == 1
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["val_loss"][0])
    cm = confusion_on(keras_predictor(model, tmp_path), prepared.batches("test", batch_size=4), 5)
    assert cm.shape == (5, 5) and cm.sum() == 3 * 32 * 32
    scores = segmentation_scores(cm, prepared.class_names)
    assert list(scores["iou"]) == FIVE
    assert open_prepared(tmp_path / "prepared").class_names == tuple(FIVE)


@pytest.mark.slow
def test_jit_compile_really_compiles_the_training_step_when_determinism_is_off(tmp_path, project_params):
    switches = {"train": {"deterministic": False, "jit_compile": True, "mixed_precision": "off"}}
    params = params_from_dict(merged(project_params, merged(TINY, switches)))
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=4)
    model, history = train_model(prepared, params.model, params.train)
    assert model.jit_compile is True  # Keras turns it off silently when it cannot compile
    assert np.isfinite(history["loss"][0])
