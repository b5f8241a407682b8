"""Scoring a split: each image named by its source file, in stored order, and the table read back as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segpipe import progress
from segpipe.evaluation import ImageScore, evaluate_split, read_image_scores, write_image_scores
from segpipe.inference import Predictor
from tests.helpers import write_tiny_prepared


def always(class_id: int, num_classes: int = 3) -> Predictor:
    """A model that predicts `class_id` for every pixel."""

    def probabilities(images: np.ndarray) -> np.ndarray:
        out = np.zeros((*images.shape[:3], num_classes), np.float32)
        out[..., class_id] = 1.0
        return out

    return Predictor(Path("fake"), 8, num_classes, probabilities)


def test_each_image_is_scored_under_its_file_name_in_stored_order(tmp_path):
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=3)  # all-zero masks, named 0, 1, 2
    cm, scores = evaluate_split(always(0), prepared, "test", batch_size=2)
    assert scores == [ImageScore(0, "0", 1.0), ImageScore(1, "1", 1.0), ImageScore(2, "2", 1.0)]
    assert cm.tolist() == [[3 * 64, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_image_scores_read_back_as_written(tmp_path):
    scores = [ImageScore(0, "Abyssinian_1.jpg", 0.5), ImageScore(1, "a, b.png", 0.25)]
    write_image_scores(tmp_path / "image_iou.csv", scores)
    assert (tmp_path / "image_iou.csv").read_text() == (
        'index,file_name,mean_iou\n0,Abyssinian_1.jpg,0.5\n1,"a, b.png",0.25\n'
    )
    assert read_image_scores(tmp_path / "image_iou.csv") == scores


def test_scoring_a_split_that_takes_long_logs_its_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    caplog.set_level("INFO", logger="segpipe.evaluation")
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=5)
    evaluate_split(always(0), prepared, "test", batch_size=2)
    assert [message.split(", ")[0] for message in caplog.messages] == [
        "test: 2 of 5 images scored (40%)",
        "test: 4 of 5 images scored (80%)",
    ]
