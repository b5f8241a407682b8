"""Segmentation scores against confusion matrices computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from segpipe.metrics import confusion_matrix, confusion_rows, segmentation_scores

NAMES = ["pet", "background", "border"]


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    y_true = np.array([[0, 0, 1], [1, 2, 2]])
    y_pred = np.array([[0, 1, 1], [1, 2, 0]])
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), expected)


def test_scores_match_hand_computation():
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    scores = segmentation_scores(cm, NAMES)
    # IoU = TP / (row sum + column sum - TP): pet 1/(2+2-1), background 2/(2+3-2), border 1/(2+1-1)
    assert scores.iou == {"pet": pytest.approx(1 / 3), "background": pytest.approx(2 / 3), "border": 0.5}
    assert scores.mean_iou == pytest.approx((1 / 3 + 2 / 3 + 0.5) / 3, abs=1e-6)
    # Dice = 2 TP / (row sum + column sum): pet 2/4, background 4/5, border 2/3
    assert scores.dice == {"pet": 0.5, "background": 0.8, "border": pytest.approx(2 / 3)}
    assert scores.pixel_accuracy == pytest.approx(4 / 6)
    assert scores.pixels == 6


def test_class_absent_from_truth_and_prediction_is_left_out_of_the_mean():
    cm = np.array([[3, 1, 0], [1, 5, 0], [0, 0, 0]])
    scores = segmentation_scores(cm, NAMES)
    assert scores.iou["border"] is None
    assert scores.mean_iou == pytest.approx((3 / 5 + 5 / 7) / 2, abs=1e-6)


def test_foreground_iou_counts_every_class_but_background_as_one():
    # Rows pet, background, border. Foreground (pet or border) truth: 2 + 2 = 4 pixels, 3 of them predicted
    # as foreground (pet or border); 1 background pixel predicted as border: IoU = 3 / (4 + 1).
    cm = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 1]])
    assert segmentation_scores(cm, NAMES).foreground_iou == pytest.approx(3 / 5)


def test_foreground_iou_is_undefined_without_a_class_named_background():
    cm = np.array([[1, 1], [0, 2]])
    assert segmentation_scores(cm, ["cat", "dog"]).foreground_iou is None


def test_confusion_rows_are_long_format_pixel_counts():
    cm = np.array([[1, 2], [3, 4]])
    assert confusion_rows(cm, ["a", "b"]) == [
        {"actual": "a", "predicted": "a", "pixels": 1},
        {"actual": "a", "predicted": "b", "pixels": 2},
        {"actual": "b", "predicted": "a", "pixels": 3},
        {"actual": "b", "predicted": "b", "pixels": 4},
    ]
