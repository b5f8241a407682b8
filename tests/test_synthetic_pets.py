"""The embedded `synthetic_pets` TFDS dataset: registered, Oxford-shaped, deterministic."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from segpipe.synthetic_pets import SyntheticPets, config_for

TINY = config_for(train_examples=4, test_examples=2, min_side=24, max_side=40, seed=7)


def prepared(data_dir) -> SyntheticPets:
    builder = SyntheticPets.with_sizes(TINY, data_dir=data_dir)
    builder.download_and_prepare()
    return builder


def records(builder: SyntheticPets, split: str) -> list[dict]:
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def test_builder_is_registered_with_tfds():
    assert "synthetic_pets" in tfds.list_builders(with_community_datasets=False)


def test_features_the_pipeline_reads_match_oxford_iiit_pet(tmp_path):
    oxford = tfds.builder("oxford_iiit_pet:4.0.0", data_dir=tmp_path / "oxford").info.features
    ours = SyntheticPets.with_sizes(TINY, data_dir=tmp_path / "ours").info.features
    for name in ("image", "segmentation_mask", "file_name", "label"):
        assert (ours[name].shape, ours[name].np_dtype) == (oxford[name].shape, oxford[name].np_dtype), name


def test_splits_have_the_configured_sizes_and_trimap_values(tmp_path):
    builder = prepared(tmp_path)
    assert builder.info.splits["train"].num_examples == 4
    assert builder.info.splits["test"].num_examples == 2
    for record in records(builder, "train"):
        height, width, _ = record["image"].shape
        assert 24 <= height <= 40 and 24 <= width <= 40
        assert record["segmentation_mask"].shape == (height, width, 1)
        assert set(np.unique(record["segmentation_mask"])) <= {1, 2, 3}


def test_generation_is_byte_for_byte_deterministic(tmp_path):
    first, second = records(prepared(tmp_path / "a"), "train"), records(prepared(tmp_path / "b"), "train")
    assert [r["file_name"] for r in first] == [r["file_name"] for r in second]
    for a, b in zip(first, second, strict=True):
        assert a["image"].tobytes() == b["image"].tobytes()
        assert a["segmentation_mask"].tobytes() == b["segmentation_mask"].tobytes()
