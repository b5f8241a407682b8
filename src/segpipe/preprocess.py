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


def prepare_dataset(data: DataConfig, out_dir: str | Path) -> dict[str, Any]:
    """Read the source `data` names, write train/val/test shards and the manifest atomically."""
    with sources.open_source(data) as source, atomic.atomic_dir(out_dir) as tmp:
        if source.sizes["train"] < 2 or source.sizes["test"] < 1:
            raise DataError(f"{source.description}: need at least 2 train and 1 test examples, found {source.sizes}")
        val = sources.held_out_indices(source.sizes["train"], data.val_fraction, data.split_seed)
        entries = {
            "train": (entry for i, entry in enumerate(source.entries("train")) if i not in val),
            "val": (entry for i, entry in enumerate(source.entries("train")) if i in val),
            "test": source.entries("test"),
        }
        skipped: dict[str, list[dict[str, str]]] = {}
        splits = {}
        for split in tfrecords.SPLITS:
            skipped[split] = []
            records = _records(entries[split], data.image_size, data.on_bad_example, skipped[split])
            written, shards = tfrecords.write_shards(tmp, split, records, data.shard_size)
            log.info("%s: wrote %d examples in %d shards, skipped %d", split, written, len(shards), len(skipped[split]))
            splits[split] = {"examples": written, "shards": shards}
        manifest = {
            "source": source.description,
            "image_size": data.image_size,
            "class_names": list(source.class_names),
            "normalization": NORMALIZATION,
            "storage": "raw uint8: image S×S×3 RGB, mask S×S×1 class ids",
            "splits": splits,
            "missing": {"train": source.missing["train"], "test": source.missing["test"]},
            "skipped": skipped,
        }
        atomic.write_json(tmp / tfrecords.MANIFEST, manifest)
    return manifest


def _records(entries: Iterator[sources.Entry], size: int, on_bad: str, skipped: list[dict[str, str]]) -> Iterator[bytes]:
    """Serialized, resized examples; bad ones raise, or are skipped and noted in `skipped`."""
    for entry in entries:
        try:
            image, mask = entry.load()
        except DataError as error:
            if on_bad == "error":
                raise
            log.warning("skipping %s", error)
            skipped.append({"name": entry.name, "reason": str(error)})
            continue
        yield tfrecords.serialize_example(resize_image(image, size), resize_mask(mask, size), entry.name)
