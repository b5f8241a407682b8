"""Segmentation scores computed from a confusion matrix (rows: true class, columns: predicted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segpipe.records import CLASS_IOU_COLUMNS, CONFUSION_COLUMNS, Scores

BACKGROUND = "background"  # the class name foreground IoU leaves out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts, int64 num_classes×num_classes, for integer label arrays of equal shape."""
    flat = y_true.astype(np.int64).ravel() * num_classes + y_pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """TP / (TP + FP + FN) for each class; NaN where the class is absent from truth and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def per_class_dice(cm: np.ndarray) -> np.ndarray:
    """2 TP / (2 TP + FP + FN) for each class; NaN where the class is absent everywhere."""
    tp = np.diag(cm).astype(np.float64)
    total = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * tp / total, np.nan)


def segmentation_scores(cm: np.ndarray, class_names: Sequence[str]) -> Scores:
    """Pixel accuracy, mean IoU (over classes present), foreground IoU, IoU and Dice per class."""
    iou, dice = per_class_iou(cm), per_class_dice(cm)
    total = int(cm.sum())
    return Scores(
        pixel_accuracy=_number(np.trace(cm) / total) if total else None,
        mean_iou=_number(np.nanmean(iou)) if np.isfinite(iou).any() else None,
        foreground_iou=_foreground_iou(cm, class_names),
        iou={name: _number(value) for name, value in zip(class_names, iou, strict=True)},
        dice={name: _number(value) for name, value in zip(class_names, dice, strict=True)},
        pixels=total,
    )


def _foreground_iou(cm: np.ndarray, class_names: Sequence[str]) -> float | None:
    """IoU of everything but the background class, merged into one class: the convention of most published
    Oxford-IIIT Pet figures (segmentation_models, the TensorFlow tutorial's binary masks)."""
    if BACKGROUND not in class_names:
        return None
    background = list(class_names).index(BACKGROUND)
    foreground = np.ones(len(class_names), dtype=bool)
    foreground[background] = False
    merged = np.array(
        [
            [cm[foreground][:, foreground].sum(), cm[foreground, background].sum()],
            [cm[background, foreground].sum(), cm[background, background]],
        ]
    )
    return _number(per_class_iou(merged)[0])


def confusion_rows(cm: np.ndarray, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """The matrix as long-format rows (actual, predicted, pixels) for DVC's confusion plot."""
    return [
        dict(zip(CONFUSION_COLUMNS, (actual, predicted, int(cm[i, j])), strict=True))
        for i, actual in enumerate(class_names)
        for j, predicted in enumerate(class_names)
    ]


def class_iou_rows(scores: Scores) -> list[dict[str, Any]]:
    """Each class's IoU as a row (class, iou), in class-id order."""
    return [dict(zip(CLASS_IOU_COLUMNS, item, strict=True)) for item in scores.iou.items()]


def _number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)
