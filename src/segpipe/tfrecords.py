"""Sharded TFRecords of fixed-size uint8 examples, and the manifest that describes them.

Pixels are stored raw (uint8, no lossy encoding); normalization happens in the model's first
layer, with the scale and offset recorded in the manifest.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from segpipe.errors import DataError

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "mask": tf.io.FixedLenFeature([], tf.string),
    "file_name": tf.io.FixedLenFeature([], tf.string),
}


def serialize_example(image: np.ndarray, mask: np.ndarray, file_name: str) -> bytes:
    """One `tf.train.Example` holding raw image and mask bytes."""
    feature = {
        "image": _bytes_feature(np.ascontiguousarray(image, dtype=np.uint8).tobytes()),
        "mask": _bytes_feature(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()),
        "file_name": _bytes_feature(file_name.encode("utf-8")),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)  # map keys sorted: same bytes every run


def write_shards(folder: Path, split: str, records: Iterable[bytes], shard_size: int) -> tuple[int, list[str]]:
    """Write records in order into `{split}-00000.tfrecord`, ... of at most `shard_size` each.

    Returns the number written and the shard names (at least one shard, possibly empty).
    """
    remaining = iter(records)
    written, names = 0, []
    while True:
        chunk = list(itertools.islice(remaining, shard_size))
        if names and not chunk:
            return written, names
        names.append(f"{split}-{len(names):05d}.tfrecord")
        with tf.io.TFRecordWriter(str(folder / names[-1])) as writer:
            for record in chunk:
                writer.write(record)
        written += len(chunk)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of prepared data, after checking that the shards are there, intact and as described."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the prepare stage first") from None
    except ValueError as error:
        raise DataError(f"{path} is not valid JSON ({error}): run the prepare stage again") from None
    missing = [key for key in ("image_size", "class_names", "normalization", "splits") if key not in manifest]
    missing += [f"splits.{split}" for split in SPLITS if split not in manifest.get("splits", {})]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: run the prepare stage again")
    size = manifest["image_size"]
    for split, info in ((split, manifest["splits"][split]) for split in SPLITS):
        found = sum(_checked_shard(Path(folder) / name, size) for name in info["shards"])
        if found != info["examples"]:
            raise DataError(f"{path} says {split} has {info['examples']} examples but its shards hold {found}")
    return manifest


def _checked_shard(path: Path, image_size: int) -> int:
    """Records in one shard, read through (checking every CRC) and with its first example's size checked."""
    if not path.is_file():
        raise DataError(f"{path}: a shard the manifest lists is missing")
    records = tf.data.TFRecordDataset(str(path))
    try:
        count = int(records.reduce(np.int64(0), lambda total, _: total + 1))
        for record in records.take(1):
            image = tf.io.parse_single_example(record, _FEATURES)["image"]
            if len(image.numpy()) != image_size * image_size * 3:
                raise DataError(f"{path}: holds images of another size than the manifest's {image_size}x{image_size}")
    except tf.errors.DataLossError as error:
        raise DataError(f"{path}: corrupted or truncated shard ({error.message.splitlines()[0]})") from None
    return count


def read_split(folder: str | Path, manifest: dict[str, Any], split: str) -> tf.data.Dataset:
    """Dataset of (uint8 image S×S×3, uint8 mask S×S×1) in the order they were written."""
    files = [str(Path(folder) / name) for name in manifest["splits"][split]["shards"]]
    size = manifest["image_size"]

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(record, _FEATURES)
        image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), (size, size, 3))
        mask = tf.reshape(tf.io.decode_raw(example["mask"], tf.uint8), (size, size, 1))
        return image, mask

    # Parallel reads interleave shards in a fixed order, so the example order stays deterministic.
    records = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE)
    return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def batched_split(folder: str | Path, manifest: dict[str, Any], split: str, batch_size: int) -> tf.data.Dataset:
    """Batched examples of `split` in their stored order, unaugmented, for validation and evaluation."""
    return read_split(folder, manifest, split).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def split_arrays(folder: str | Path, manifest: dict[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole split as two stacked arrays, images N×S×S×3 and masks N×S×S×1, in stored order."""
    images, masks = [], []
    for image, mask in read_split(folder, manifest, split).as_numpy_iterator():
        images.append(image)
        masks.append(mask)
    return np.stack(images), np.stack(masks)


def sample_split(
    folder: str | Path, manifest: dict[str, Any], split: str, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of `count` examples (or all, if fewer) as stacked image and mask arrays."""
    total = manifest["splits"][split]["examples"]
    return select_examples(folder, manifest, split, np.random.default_rng(seed).permutation(total)[:count])


def select_examples(
    folder: str | Path, manifest: dict[str, Any], split: str, indices: Iterable[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The examples at `indices` (positions in stored order), stacked, in the order of `indices`."""
    order = [int(index) for index in indices]
    keep = tf.constant(sorted(order), dtype=tf.int64)
    pairs = read_split(folder, manifest, split).enumerate().filter(lambda i, _: tf.reduce_any(i == keep))
    found = {int(i): (image, mask) for i, (image, mask) in pairs.as_numpy_iterator()}
    return np.stack([found[i][0] for i in order]), np.stack([found[i][1] for i in order])
