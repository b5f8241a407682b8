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
    records = (tfrecords.serialize_example(*example) for example in originals)
    written, names = tfrecords.write_shards(tmp_path, "test", records, shard_size=2)
    assert written == 5
    manifest = {"image_size": 8, "splits": {"test": {"shards": names}}}
    read = list(tfrecords.read_split(tmp_path, manifest, "test").as_numpy_iterator())
    assert len(read) == 5
    for (image, mask, _), (read_image, read_mask) in zip(originals, read):
        np.testing.assert_array_equal(read_image, image)
        np.testing.assert_array_equal(read_mask, mask)


def test_shards_hold_at_most_shard_size_examples(tmp_path):
    records = [tfrecords.serialize_example(*example) for example in examples(5, 4)]
    assert tfrecords.write_shards(tmp_path, "train", records, shard_size=2) == (
        5,
        ["train-00000.tfrecord", "train-00001.tfrecord", "train-00002.tfrecord"],
    )


def test_an_empty_split_still_gets_one_empty_shard(tmp_path):
    assert tfrecords.write_shards(tmp_path, "val", [], shard_size=2) == (0, ["val-00000.tfrecord"])
    assert (tmp_path / "val-00000.tfrecord").stat().st_size == 0


def test_stored_bytes_stay_within_ten_percent_of_raw_pixels(tmp_path):
    size, count = 32, 10
    records = (tfrecords.serialize_example(*example) for example in examples(count, size))
    _, names = tfrecords.write_shards(tmp_path, "train", records, shard_size=count)
    raw = count * size * size * 4
    assert (tmp_path / names[0]).stat().st_size <= 1.1 * raw


def test_missing_manifest_says_to_run_prepare(tmp_path):
    with pytest.raises(DataError, match="manifest.json not found: run the prepare stage first"):
        tfrecords.read_manifest(tmp_path)


def test_sample_is_seeded_and_keeps_images_with_their_masks(tmp_path):
    originals = list(examples(6, 4))
    _, names = tfrecords.write_shards(tmp_path, "test", (tfrecords.serialize_example(*e) for e in originals), 4)
    manifest = {"image_size": 4, "splits": {"test": {"shards": names, "examples": 6}}}
    images, masks = tfrecords.sample_split(tmp_path, manifest, "test", count=3, seed=5)
    again, _ = tfrecords.sample_split(tmp_path, manifest, "test", count=3, seed=5)
    assert images.shape == (3, 4, 4, 3) and masks.shape == (3, 4, 4, 1)
    np.testing.assert_array_equal(images, again)
    by_image = {image.tobytes(): mask for image, mask, _ in originals}
    for image, mask in zip(images, masks):
        np.testing.assert_array_equal(by_image[image.tobytes()], mask)


def test_sample_larger_than_the_split_returns_the_whole_split(tmp_path):
    _, names = tfrecords.write_shards(tmp_path, "test", (tfrecords.serialize_example(*e) for e in examples(2, 4)), 4)
    manifest = {"image_size": 4, "splits": {"test": {"shards": names, "examples": 2}}}
    images, _ = tfrecords.sample_split(tmp_path, manifest, "test", count=10, seed=0)
    assert len(images) == 2
