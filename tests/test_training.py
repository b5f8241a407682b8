"""Training and evaluation in-process, on data prepared from a tiny folder dataset."""

from __future__ import annotations

import numpy as np

from segpipe import tfrecords
from segpipe.config import params_from_dict
from segpipe.evaluation import confusion_on
from segpipe.metrics import segmentation_scores
from segpipe.preprocess import prepare_dataset
from segpipe.training import train_model
from tests.conftest import TINY, merged
from tests.fixtures import write_masks_folder

FIVE = ["sky", "road", "car", "tree", "house"]


def test_a_five_class_masks_folder_trains_and_evaluates_end_to_end(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=12, num_classes=5, size=32)
    folder = {"path": str(root), "layout": "masks", "class_names": FIVE, "test_fraction": 0.25}
    params = params_from_dict(merged(project_params, merged(TINY, {"data": {"source": "folder", "folder": folder}})))
    params.validate()
    manifest = prepare_dataset(params.data, tmp_path / "prepared")
    model, history = train_model(tmp_path / "prepared", manifest, params.model, params.train)
    assert model.output_shape == (None, 32, 32, 5)
    assert [row["epoch"] for row in history] == [1]
    assert np.isfinite(history[0]["loss"]) and np.isfinite(history[0]["val_loss"])
    test = tfrecords.batched_split(tmp_path / "prepared", manifest, "test", batch_size=4)
    cm = confusion_on(model, test, 5)
    assert cm.shape == (5, 5) and cm.sum() == 3 * 32 * 32
    scores = segmentation_scores(cm, manifest["class_names"])
    assert list(scores["iou"]) == FIVE
    assert tfrecords.read_manifest(tmp_path / "prepared")["class_names"] == FIVE
