"""The TFRecord format of prepared examples: raw uint8 image and mask bytes, in numbered shards.

Pixels are stored raw (no lossy encoding); normalization happens in the model's first layer.
What the shards hold as a whole is described by `prepared.PreparedData`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

from segpipe.errors import DataError

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


def parse_example(record: tf.Tensor, image_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(uint8 image S×S×3, uint8 mask S×S×1) from one serialized example."""
    example = tf.io.parse_single_example(record, _FEATURES)
    image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), (image_size, image_size, 3))
    mask = tf.reshape(tf.io.decode_raw(example["mask"], tf.uint8), (image_size, image_size, 1))
    return image, mask


def parse_file_name(record: tf.Tensor) -> tf.Tensor:
    """The source file name (a string tensor) one serialized example was made from."""
    return tf.io.parse_single_example(record, {"file_name": _FEATURES["file_name"]})["file_name"]


def read_records(paths: list[Path]) -> tf.data.Dataset:
    """The serialized examples of `paths`, shard after shard, in the order they were written."""
    # Parallel reads interleave shards in a fixed order, so the example order stays deterministic.
    return tf.data.TFRecordDataset([str(path) for path in paths], num_parallel_reads=tf.data.AUTOTUNE)


def interleaved_records(files: tf.Tensor, cycle_length: int) -> tf.data.Dataset:
    """The serialized examples of `files` (a string tensor), one record from each of `cycle_length`
    files in turn: the same order on every machine, whatever its number of cores."""
    return tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, cycle_length=cycle_length, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


def checked_record_count(path: Path, image_size: int) -> int:
    """Records in one shard, read through (every CRC checked), its first example's size checked."""
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


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
