"""Prepared data (prepared.py): the manifest written and read back, every shard and field checked when the
folder is opened, and the splits read as counts, steps, samples and selections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segpipe.errors import DataError
from segpipe.prepared import MANIFEST, open_prepared
from tests.helpers import prepared_test_split, random_examples, write_tiny_prepared


def test_missing_manifest_says_to_run_prepare(tmp_path):
    with pytest.raises(DataError) as error:
        open_prepared(tmp_path)
    assert str(error.value) == f"{tmp_path / 'manifest.json'} not found: run the prepare stage first"


def test_steps_per_epoch_counts_the_last_partial_batch(tmp_path):
    prepared = write_tiny_prepared(tmp_path, per_split=5)
    assert [prepared.steps_per_epoch(size) for size in (1, 2, 5, 8)] == [5, 3, 1, 1]


def test_sample_is_seeded_and_keeps_images_with_their_masks(tmp_path):
    originals = list(random_examples(6, 4))
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
    prepared = prepared_test_split(tmp_path, list(random_examples(2, 4)), size=4, shard_size=4)
    images, _ = prepared.sample("test", count=10, seed=0)
    assert len(images) == 2


def test_select_returns_examples_in_the_order_asked(tmp_path):
    originals = list(random_examples(5, 4))
    prepared = prepared_test_split(tmp_path, originals, size=4, shard_size=2)
    images, _ = prepared.select("test", [4, 0, 2])
    for image, index in zip(images, [4, 0, 2], strict=True):
        np.testing.assert_array_equal(image, originals[index][0])


def test_file_names_come_back_in_stored_order(tmp_path):
    prepared = prepared_test_split(tmp_path, list(random_examples(5, 4)), size=4, shard_size=2)
    assert prepared.file_names("test") == [f"img_{index}.png" for index in range(5)]


@pytest.fixture
def prepared(tmp_path):
    """A tiny prepared folder: three 8×8 examples per split, in shards of two, and its manifest."""
    write_tiny_prepared(tmp_path, per_split=3)
    return tmp_path


def test_intact_prepared_data_reads(prepared):
    assert open_prepared(prepared).count("test") == 3


def test_truncated_shard_is_named(prepared):
    shard = prepared / "train-00000.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"train-00000\.tfrecord: corrupted or truncated shard"):
        open_prepared(prepared)


def test_corrupted_byte_fails_the_crc_and_names_the_shard(prepared):
    shard = prepared / "val-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"val-00001\.tfrecord: corrupted or truncated shard"):
        open_prepared(prepared)


def test_missing_shard_is_named(prepared):
    (prepared / "test-00001.tfrecord").unlink()
    with pytest.raises(DataError, match=r"test-00001\.tfrecord: a shard the manifest lists is missing"):
        open_prepared(prepared)


def test_manifest_count_that_no_longer_matches_the_shards(prepared):
    manifest = json.loads((prepared / MANIFEST).read_text())
    manifest["splits"]["train"]["examples"] = 5
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest\.json says train has 5 examples but its shards hold 3"):
        open_prepared(prepared)


def test_manifest_image_size_that_no_longer_matches_the_shards(prepared):
    manifest = json.loads((prepared / MANIFEST).read_text())
    manifest["image_size"] = 16
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"holds images of another size than the manifest's 16x16"):
        open_prepared(prepared)


def test_manifest_that_is_not_json(prepared):
    (prepared / MANIFEST).write_text("{ oops")
    with pytest.raises(DataError, match=r"manifest\.json is not valid JSON"):
        open_prepared(prepared)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(class_names=["pet"]), "class_names must name at least 2 distinct classes, got ['pet']"),
        (lambda m: m.pop("normalization"), "normalization is missing"),
        (lambda m: m["splits"]["val"].update(examples="3"), "splits.val.examples must be int, got '3' (str)"),
        (
            lambda m: m["splits"]["test"].update(shards=["../x.tfrecord"]),
            "splits.test.shards must be file names inside the folder, got ['../x.tfrecord']",
        ),
        (lambda m: m.update(extra=1), "extra is not a known manifest field"),
    ],
)
def test_manifest_fields_are_validated_naming_the_field(prepared, change, message):
    manifest = json.loads((prepared / MANIFEST).read_text())
    change(manifest)
    (prepared / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError) as error:
        open_prepared(prepared)
    assert str(error.value) == f"{prepared / MANIFEST}: {message}: run the prepare stage again"


def test_a_written_manifest_reads_back_as_the_same_prepared_data(tmp_path):
    written = write_tiny_prepared(tmp_path, per_split=2)
    assert open_prepared(tmp_path) == written


def test_the_manifest_names_each_split_s_size_examples_as_prepared_data_always_did(tmp_path):
    write_tiny_prepared(tmp_path, per_split=3)
    train = json.loads((tmp_path / MANIFEST).read_text())["splits"]["train"]
    assert train == {"examples": 3, "shards": ["train-00000.tfrecord", "train-00001.tfrecord"]}
