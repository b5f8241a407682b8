"""Run a trained model over a dataset and count its pixel confusion."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from segpipe.metrics import confusion_matrix


def predict_classes(model: keras.Model, images: tf.Tensor) -> np.ndarray:
    """Per-pixel argmax class ids (N×S×S) with the model in inference mode."""
    return tf.argmax(model(images, training=False), axis=-1).numpy()


def confusion_on(model: keras.Model, dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Confusion matrix of the model's predictions over every batch of (images, masks)."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for images, masks in dataset:
        cm += confusion_matrix(masks.numpy()[..., 0], predict_classes(model, images), num_classes)
    return cm
