"""The TFRecord format (tfrecords.py): an exact round trip in order, the shard layout, the storage size."""

from __future__ import annotations

import numpy as np

from segpipe import tfrecords
from tests.helpers import prepared_test_split, random_examples


def test_examples_read_back_exactly_and_in_order(tmp_path):
    originals = list(random_examples(5, 8))
    prepared = prepared_test_split(tmp_path, originals, size=8, shard_size=2)
    read = list(prepared.examples("test").as_numpy_iterator())
    assert len(read) == 5
    for (image, mask, _), (read_image, read_mask) in zip(originals, read, strict=True):
        np.testing.assert_array_equal(read_image, image)
        np.testing.assert_array_equal(read_mask, mask)


def test_shards_hold_at_most_shard_size_examples(tmp_path):
    records = [tfrecords.serialize_example(*example) for example in random_examples(5, 4)]
    assert tfrecords.write_shards(tmp_path, "train", records, shard_size=2) == (
        5,
        ["train-00000.tfrecord", "train-00001.tfrecord", "train-00002.tfrecord"],
    )


def test_an_empty_split_still_gets_one_empty_shard(tmp_path):
    assert tfrecords.write_shards(tmp_path, "val", [], shard_size=2) == (0, ["val-00000.tfrecord"])
    assert (tmp_path / "val-00000.tfrecord").stat().st_size == 0


def test_stored_bytes_stay_within_ten_percent_of_raw_pixels(tmp_path):
    size, count = 32, 10
    records = (tfrecords.serialize_example(*example) for example in random_examples(count, size))
    _, names = tfrecords.write_shards(tmp_path, "train", records, shard_size=count)
    raw = count * size * size * 4
    assert (tmp_path / names[0]).stat().st_size <= 1.1 * raw
