"""TFRecord shards: exact round trip, shard layout and storage size."""

from __future__ import annotations

import numpy as np
import pytest

from segpipe import tfrecords
from segpipe.errors import DataError


def examples(count: int, size: int):
    rng = np.random.default_rng(1)
    for index in range(count):
        image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        mask = rng.integers(0, 3, size=(size, size, 1), dtype=np.uint8)
        yield image, mask, f"img_{index}.png"


def test_examples_read_back_exactly_and_in_order(tmp_path):
    originals = list(examples(5, 8))
    names = tfrecords.shard_names("test", 5, shard_size=2)
    records = (tfrecords.serialize_example(*example) for example in originals)
    assert tfrecords.write_shards(tmp_path, names, records, shard_size=2) == 5
    manifest = {"image_size": 8, "splits": {"test": {"shards": names}}}
    read = list(tfrecords.read_split(tmp_path, manifest, "test").as_numpy_iterator())
    assert len(read) == 5
    for (image, mask, _), (read_image, read_mask) in zip(originals, read):
        np.testing.assert_array_equal(read_image, image)
        np.testing.assert_array_equal(read_mask, mask)


def test_shards_hold_at_most_shard_size_examples():
    assert tfrecords.shard_names("train", 5, shard_size=2) == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
    ]
    assert tfrecords.shard_names("val", 0, shard_size=2) == ["val-00000-of-00001.tfrecord"]


def test_more_records_than_shards_hold_is_an_error(tmp_path):
    records = (tfrecords.serialize_example(*example) for example in examples(3, 4))
    with pytest.raises(ValueError, match="more records than 1 shards of 2"):
        tfrecords.write_shards(tmp_path, ["only.tfrecord"], records, shard_size=2)


def test_stored_bytes_stay_within_ten_percent_of_raw_pixels(tmp_path):
    size, count = 32, 10
    names = tfrecords.shard_names("train", count, shard_size=count)
    records = (tfrecords.serialize_example(*example) for example in examples(count, size))
    tfrecords.write_shards(tmp_path, names, records, shard_size=count)
    raw = count * size * size * 4
    assert (tmp_path / names[0]).stat().st_size <= 1.1 * raw


def test_missing_manifest_says_to_run_prepare(tmp_path):
    with pytest.raises(DataError, match="manifest.json not found: run the prepare stage first"):
        tfrecords.read_manifest(tmp_path)
