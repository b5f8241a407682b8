"""Run a trained model over a dataset: its predictions, the pixel confusion, each image's score."""

from __future__ import annotations

import csv
import dataclasses
import logging
import typing
from pathlib import Path

import numpy as np
import tensorflow as tf

from segpipe import atomic
from segpipe.config import Tta
from segpipe.errors import DataError
from segpipe.inference import Predictor, probabilities_with_tta
from segpipe.metrics import confusion_matrix, per_class_iou
from segpipe.prepared import PreparedData, SplitName
from segpipe.progress import Progress
from segpipe.records import ImageScore

log = logging.getLogger(__name__)


def predict_classes(predictor: Predictor, images: np.ndarray, tta: Tta = "none") -> np.ndarray:
    """Per-pixel argmax class ids (N×S×S)."""
    return probabilities_with_tta(predictor, np.asarray(images), tta).argmax(axis=-1)


def confusion_on(predictor: Predictor, dataset: tf.data.Dataset, num_classes: int, tta: Tta = "none") -> np.ndarray:
    """Confusion matrix of the model's predictions over every batch of (images, masks)."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for images, masks in dataset.as_numpy_iterator():
        total += confusion_matrix(masks[..., 0], predict_classes(predictor, images, tta), num_classes)
    return total


def evaluate_split(
    predictor: Predictor, prepared: PreparedData, split: SplitName, batch_size: int, tta: Tta = "none"
) -> tuple[np.ndarray, list[ImageScore]]:
    """The split's total confusion matrix, and each image's score in stored order; progress logged
    over a split that takes long (progress.py)."""
    names = prepared.file_names(split)
    progress = Progress(log, split, len(names), "images scored")
    total = np.zeros((prepared.num_classes, prepared.num_classes), dtype=np.int64)
    scores = []
    for images, masks in prepared.batches(split, batch_size).as_numpy_iterator():
        for truth, predicted in zip(masks[..., 0], predict_classes(predictor, images, tta), strict=True):
            cm = confusion_matrix(truth, predicted, prepared.num_classes)
            total += cm
            iou = round(float(np.nanmean(per_class_iou(cm))), 6)
            scores.append(ImageScore(len(scores), names[len(scores)], iou))
        progress.advance(len(images))
    return total, scores


def write_image_scores(path: str | Path, scores: list[ImageScore]) -> None:
    atomic.write_csv(path, [dataclasses.asdict(score) for score in scores])


def read_image_scores(path: str | Path) -> list[ImageScore]:
    """What `write_image_scores` wrote: one `ImageScore` per row, its columns converted to the field types."""
    types = typing.get_type_hints(ImageScore)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [ImageScore(**{name: convert(row[name]) for name, convert in types.items()}) for row in rows]
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the evaluate stage first") from None
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a table of per-image scores ({error!r}): run the evaluate stage again") from None


def worst_images(scores: list[ImageScore], count: int) -> list[ImageScore]:
    """The `count` lowest-scoring images, lowest first (ties by index)."""
    return sorted(scores, key=lambda score: (score.mean_iou, score.index))[:count]
