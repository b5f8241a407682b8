"""Run a trained model over a dataset and count its pixel confusion."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from segpipe.metrics import confusion_matrix, per_class_iou


def predict_classes(model: keras.Model, images: tf.Tensor) -> np.ndarray:
    """Per-pixel argmax class ids (N×S×S) with the model in inference mode."""
    return tf.argmax(model(images, training=False), axis=-1).numpy()


def confusion_on(model: keras.Model, dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Confusion matrix of the model's predictions over every batch of (images, masks)."""
    return evaluate_images(model, dataset, num_classes)[0]


def evaluate_images(model: keras.Model, dataset: tf.data.Dataset, num_classes: int) -> tuple[np.ndarray, list[float]]:
    """The total confusion matrix, and each image's mean IoU (over classes it or its prediction has)."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    image_iou = []
    for images, masks in dataset:
        for truth, predicted in zip(masks.numpy()[..., 0], predict_classes(model, images)):
            cm = confusion_matrix(truth, predicted, num_classes)
            total += cm
            image_iou.append(float(np.nanmean(per_class_iou(cm))))
    return total, image_iou
