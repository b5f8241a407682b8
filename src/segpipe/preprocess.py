"""Turn source examples into fixed-size training examples and write them as TFRecords."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from segpipe import atomic, sources, tfrecords
from segpipe.config import DataConfig
from segpipe.errors import DataError

log = logging.getLogger(__name__)

# The model's first layer maps stored uint8 pixels to x * scale + offset, i.e. into [0, 1].
NORMALIZATION = {"scale": 1.0 / 255.0, "offset": 0.0}


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize to size×size, rounded back to uint8."""
    resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize: every output value is one of the input's labels."""
    return tf.image.resize(mask, (size, size), method="nearest").numpy().astype(np.uint8)


def trimap_to_classes(trimap: np.ndarray, file_name: str) -> np.ndarray:
    """Map Oxford trimap values 1 (pet), 2 (background), 3 (border) to class ids 0, 1, 2."""
    values = np.unique(trimap)
    if values.size and (values.min() < 1 or values.max() > 3):
        raise DataError(f"{file_name}: trimap values must be 1, 2 or 3, found {values.tolist()}")
    return trimap - 1


def validation_indices(train_size: int, fraction: float, seed: int) -> set[int]:
    """A seeded, order-independent choice of round(fraction * n) train indices (at least one)."""
    count = min(train_size - 1, max(1, round(train_size * fraction)))
    return set(np.random.default_rng(seed).permutation(train_size)[:count].tolist())


def prepare_dataset(data: DataConfig, out_dir: str | Path) -> dict[str, Any]:
    """Load `data.dataset` through TFDS, write train/val/test shards and the manifest atomically."""
    with sources.prepared_builder(data) as builder, atomic.atomic_dir(out_dir) as tmp:
        train_size = sources.split_size(builder, "train")
        if train_size < 2:
            raise DataError(f"{data.dataset}: the train split needs at least 2 examples, has {train_size}")
        val = validation_indices(train_size, data.val_fraction, data.split_seed)
        counts = {
            "train": train_size - len(val),
            "val": len(val),
            "test": sources.split_size(builder, "test"),
        }
        streams = {
            "train": (ex for i, ex in enumerate(sources.iter_examples(builder, "train")) if i not in val),
            "val": (ex for i, ex in enumerate(sources.iter_examples(builder, "train")) if i in val),
            "test": sources.iter_examples(builder, "test"),
        }
        splits = {}
        for split in tfrecords.SPLITS:
            names = tfrecords.shard_names(split, counts[split], data.shard_size)
            written = tfrecords.write_shards(tmp, names, _records(streams[split], data.image_size), data.shard_size)
            log.info("%s: wrote %d examples in %d shards", split, written, len(names))
            splits[split] = {"examples": written, "shards": names}
        manifest = {
            "source": {
                "dataset": builder.name,
                "version": str(builder.version),
                "config": builder.builder_config.name if builder.builder_config else None,
            },
            "image_size": data.image_size,
            "class_names": list(sources.TRIMAP_CLASS_NAMES),
            "normalization": NORMALIZATION,
            "storage": "raw uint8: image S×S×3 RGB, mask S×S×1 class ids",
            "splits": splits,
        }
        atomic.write_json(tmp / tfrecords.MANIFEST, manifest)
    return manifest


def _records(examples: Iterator[sources.Example], size: int) -> Iterator[bytes]:
    for example in examples:
        image = resize_image(example.image, size)
        mask = resize_mask(trimap_to_classes(example.trimap, example.file_name), size)
        yield tfrecords.serialize_example(image, mask, example.file_name)
