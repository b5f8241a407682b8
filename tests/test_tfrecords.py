"""TFRecord shards and prepared data: exact round trip, shard layout, storage size, samples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segpipe import tfrecords
from segpipe.errors import DataError
from segpipe.prepared import Split, open_prepared
from tests.helpers import write_tiny_prepared


def examples(count: int, size: int):
    rng = np.random.default_rng(1)
    for index in range(count):
        image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        mask = rng.integers(0, 3, size=(size, size, 1), dtype=np.uint8)
        yield image, mask, f"img_{index}.png"


def prepared_test_split(tmp_path, originals, size: int, shard_size: int):
    """Tiny prepared data whose test split holds `originals`, in shards of `shard_size`."""
    base = write_tiny_prepared(tmp_path / "prepared")
    records = (tfrecords.serialize_example(*example) for example in originals)
    written, names = tfrecords.write_shards(base.folder, "test", records, shard_size)
    splits = dataclasses.replace(base.splits, test=Split(count=written, shards=tuple(names)))
    return dataclasses.replace(base, image_size=size, splits=splits)


def test_examples_read_back_exactly_and_in_order(tmp_path):
    originals = list(examples(5, 8))
    prepared = prepared_test_split(tmp_path, originals, size=8, shard_size=2)
    read = list(prepared.examples("test").as_numpy_iterator())
    assert len(read) == 5
    for (image, mask, _), (read_image, read_mask) in zip(originals, read, strict=True):
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
    with pytest.raises(DataError) as error:
        open_prepared(tmp_path)
    assert str(error.value) == f"{tmp_path / 'manifest.json'} not found: run the prepare stage first"


def test_steps_per_epoch_counts_the_last_partial_batch(tmp_path):
    prepared = write_tiny_prepared(tmp_path, per_split=5)
    assert [prepared.steps_per_epoch(size) for size in (1, 2, 5, 8)] == [5, 3, 1, 1]


def test_sample_is_seeded_and_keeps_images_with_their_masks(tmp_path):
    originals = list(examples(6, 4))
    prepared = prepared_test_split(tmp_path, originals, size=4, shard_size=4)
    images, masks = prepared.sample("test", count=3, seed=5)
    again, _ = prepared.sample("test", count=3, seed=5)
    other, _ = prepared.sample("test", count=3, seed=6)
    assert images.shape == (3, 4, 4, 3) and masks.shape == (3, 4, 4, 1)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    by_image = {image.tobytes(): mask for image, mask, _ in originals}
    for image, mask in zip(images, masks, strict=True):
        np.testing.assert_array_equal(by_image[image.tobytes()], mask)


def test_sample_larger_than_the_split_returns_the_whole_split(tmp_path):
    prepared = prepared_test_split(tmp_path, list(examples(2, 4)), size=4, shard_size=4)
    images, _ = prepared.sample("test", count=10, seed=0)
    assert len(images) == 2


def test_select_returns_examples_in_the_order_asked(tmp_path):
    originals = list(examples(5, 4))
    prepared = prepared_test_split(tmp_path, originals, size=4, shard_size=2)
    images, _ = prepared.select("test", [4, 0, 2])
    for image, index in zip(images, [4, 0, 2], strict=True):
        np.testing.assert_array_equal(image, originals[index][0])


def test_file_names_come_back_in_stored_order(tmp_path):
    prepared = prepared_test_split(tmp_path, list(examples(5, 4)), size=4, shard_size=2)
    assert prepared.file_names("test") == [f"img_{index}.png" for index in range(5)]
