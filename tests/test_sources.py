"""Real ways in (sources.py): image folders in the oxford and masks layouts, and Oxford-IIIT Pet through TFDS."""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from segpipe import images
from segpipe.errors import DataError, PipelineError
from segpipe.preparation import prepare_dataset
from segpipe.prepared import open_prepared
from segpipe.sources import held_out_indices
from tests.helpers import (
    QUIRKY,
    SHARED_SAMPLE,
    data_config,
    folder_data,
    folder_source,
    masks_set,
    split_counts,
    write_masks_folder,
    write_oxford_folder,
)


def stored(folder, split):
    return list(open_prepared(folder).examples(split).as_numpy_iterator())


def test_oxford_folder_prepares_listed_examples_and_reports_missing_ones(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets",
        train={f"cat_{k}": m for k, m in QUIRKY.items()},
        test={"dog_1": "RGB", "dog_2": "RGBA"},
        absent=("ghost_1",),
    )
    prepared = prepare_dataset(data_config(project_params, **folder_source(root), val_fraction=0.2), tmp_path / "out")
    assert split_counts(prepared) == {"train": 5, "val": 1, "test": 2}
    assert prepared.missing == {"train": ["ghost_1.jpg"], "test": []}
    assert prepared.class_names == ("pet", "background", "border")
    expected = images.resize_mask(np.array(Image.open(root / "annotations/trimaps/dog_1.png"))[..., None] - 1, 16)
    (image, mask), _ = stored(tmp_path / "out", "test")
    np.testing.assert_array_equal(mask, expected)
    assert image.shape == (16, 16, 3)


def test_masks_layout_takes_class_names_from_params_and_holds_out_a_seeded_test_split(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=10, num_classes=5)
    names = ["sky", "road", "car", "tree", "house"]
    config = data_config(project_params, **folder_source(root, "masks", class_names=names, test_fraction=0.3))
    prepared = prepare_dataset(config, tmp_path / "out")
    assert prepared.class_names == tuple(names)
    assert split_counts(prepared) == {"train": 6, "val": 1, "test": 3}
    _, mask = stored(tmp_path / "out", "test")[0]
    assert set(np.unique(mask)) == {0, 1, 2, 3, 4}


def test_masks_layout_takes_an_image_of_every_suffix_predict_takes(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=len(images.IMAGE_SUFFIXES), num_classes=3)
    for index, suffix in enumerate(images.IMAGE_SUFFIXES):
        png = root / "images" / f"img_{index}.png"
        target = png.with_suffix(suffix.upper() if index % 2 else suffix)  # .JPEG, .GIF, ...: any case
        if target != png:
            Image.open(png).convert("RGB").save(target)
            png.unlink()
    config = data_config(project_params, **folder_source(root, "masks", class_names=["a", "b", "c"], test_fraction=0.3))
    prepared = prepare_dataset(config, tmp_path / "out")
    assert sum(split_counts(prepared).values()) == len(images.IMAGE_SUFFIXES)


def test_entry_names_that_leave_the_folder_are_refused(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    with (root / "annotations/test.txt").open("a") as handle:
        handle.write("../../secret 1 1 1\n")
    with pytest.raises(DataError, match=r"test\.txt:3: refusing entry name '\.\./\.\./secret'"):
        prepare_dataset(data_config(project_params, **folder_source(root)), tmp_path / "out")


def test_oxford_without_network_or_archives_fails_fast_with_the_ways_forward(
    tmp_path, project_params, monkeypatch, caplog
):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    tfds_dir, manual = tmp_path / "tfds", tmp_path / "manual"
    config = data_config(
        project_params, dataset="oxford_iiit_pet:4.0.0", tfds_data_dir=str(tfds_dir), input=str(manual)
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "earlier.txt").write_text("kept")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as error:
        prepare_dataset(config, tmp_path / "out")
    assert time.monotonic() - started < 60
    assert str(error.value) == (
        f"oxford_iiit_pet:4.0.0 is not prepared in data.tfds_data_dir ({tfds_dir}) and cannot be downloaded "
        "(thor.robots.ox.ac.uk: network is unreachable). Either put annotations.tar.gz and images.tar.gz in "
        f"data.input ({manual}), or point data.tfds_data_dir at a copy where it is prepared (the folder "
        "holding oxford_iiit_pet/4.0.0/), or set data.source: folder with data.input at the extracted "
        "archives, or use the embedded dataset (data.dataset: synthetic_pets:1.0.0)"
    )
    assert [record.getMessage() for record in caplog.records] == []  # no TFDS warning before the message
    assert (tmp_path / "out" / "earlier.txt").read_text() == "kept"


def prepare_oxford_with_tfds(archive_root, data_dir, monkeypatch):
    """Prepare TFDS's own oxford_iiit_pet builder offline from a folder in the archive layout."""
    extracted = {"images": str(archive_root), "annotations": str(archive_root)}
    with monkeypatch.context() as patch:
        patch.setattr(tfds.download.DownloadManager, "download_and_extract", lambda self, urls: extracted)
        builder = tfds.builder("oxford_iiit_pet:4.0.0", data_dir=data_dir)
        builder.download_and_prepare()
    return builder


def test_an_already_prepared_tfds_data_dir_is_used_without_network(tmp_path, project_params, monkeypatch):
    root = write_oxford_folder(
        tmp_path / "archives",
        train={"cat_1": "RGB", "cat_2": "RGB", "cat_3": "RGB"},
        test={"dog_1": "RGB"},
        comment=False,
    )
    prepare_oxford_with_tfds(root, tmp_path / "tfds", monkeypatch)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    config = data_config(project_params, dataset="oxford_iiit_pet:4.0.0", tfds_data_dir=str(tmp_path / "tfds"))
    prepared = prepare_dataset(config, tmp_path / "out")
    assert prepared.source["dataset"] == "oxford_iiit_pet"
    assert split_counts(prepared) == {"train": 2, "val": 1, "test": 1}


def test_oxford_feature_dict_goes_through_the_pipeline_with_tfds_mock_data(tmp_path, project_params, monkeypatch):
    def as_dataset(self, split, **kwargs):
        """Examples shaped by the builder's own feature spec, with valid trimap values."""
        specs = self.info.features.get_tensor_info()
        rng = np.random.default_rng(0)

        def example(index):
            values = {}
            for name, spec in specs.items():
                shape = [20 if dim is None else dim for dim in spec.shape]
                if name == "segmentation_mask":
                    values[name] = rng.integers(1, 4, size=shape).astype(spec.dtype.as_numpy_dtype)
                elif spec.dtype == tf.string:
                    values[name] = f"{split}_{index}.jpg"
                else:
                    values[name] = rng.integers(0, 2, size=shape).astype(spec.dtype.as_numpy_dtype)
            return values

        return tf.data.Dataset.from_generator(
            lambda: (example(i) for i in range(4)),
            output_signature={
                name: tf.TensorSpec([20 if d is None else d for d in s.shape], s.dtype) for name, s in specs.items()
            },
        )

    monkeypatch.setattr("segpipe.sources._first_unreachable", lambda urls, timeout: None)
    config = data_config(project_params, dataset="oxford_iiit_pet:4.0.0", tfds_data_dir=str(tmp_path / "tfds"))
    with tfds.testing.mock_data(num_examples=4, as_dataset_fn=as_dataset):
        prepared = prepare_dataset(config, tmp_path / "out")
    assert {"head_bbox", "species"} <= set(tfds.builder("oxford_iiit_pet").info.features)
    assert split_counts(prepared) == {"train": 3, "val": 1, "test": 4}
    _, mask = stored(tmp_path / "out", "test")[0]
    assert set(np.unique(mask)) <= {0, 1, 2}


shared_sample = pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="shared Oxford-IIIT Pet sample not present")


@shared_sample
def test_shared_sample_in_the_oxford_layout(tmp_path, project_params):
    started = time.monotonic()
    prepared = prepare_dataset(data_config(project_params, **folder_source(SHARED_SAMPLE)), tmp_path / "out")
    assert split_counts(prepared) == {"train": 90, "val": 10, "test": 98}
    assert prepared.missing == {"train": [], "test": []}
    print(f"prepared 198 real photos at {198 / (time.monotonic() - started):.0f} images/s")


@shared_sample
def test_shared_sample_through_tfds_own_oxford_builder(tmp_path, project_params, monkeypatch):
    builder = prepare_oxford_with_tfds(SHARED_SAMPLE, tmp_path / "tfds", monkeypatch)
    assert {split: info.num_examples for split, info in builder.info.splits.items()} == {"train": 100, "test": 98}
    config = data_config(project_params, dataset="oxford_iiit_pet:4.0.0", tfds_data_dir=str(tmp_path / "tfds"))
    prepared = prepare_dataset(config, tmp_path / "out")
    assert prepared.count("test") == 98


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    root = masks_set(tmp_path / "set")
    outside = tmp_path / "secret.png"
    (root / "images" / "img_0.png").rename(outside)
    (root / "images" / "img_0.png").symlink_to(outside)
    with pytest.raises(PipelineError) as error:
        prepare_dataset(folder_data(root), tmp_path / "out")
    assert str(error.value) == f"{root / 'images' / 'img_0.png'}: a link to {outside}, outside {root}: refused"


def test_hidden_files_are_ignored_and_names_with_spaces_accepted(tmp_path):
    root = masks_set(tmp_path / "set")
    (root / "images" / "._img_0.png").write_bytes(b"macOS resource fork")
    (root / "images" / "img_1.png").rename(root / "images" / "my cat.png")
    (root / "masks" / "img_1.png").rename(root / "masks" / "my cat.png")
    prepared = prepare_dataset(folder_data(root), tmp_path / "out")
    assert prepared.count("train") + prepared.count("val") + prepared.count("test") == 4
    assert prepared.missing == {"train": [], "test": []}  # the hidden file is not an image lacking its mask


def test_validation_split_is_seeded_and_sized_by_fraction():
    first = held_out_indices(100, 0.1, seed=3)
    assert first == held_out_indices(100, 0.1, seed=3)
    assert first != held_out_indices(100, 0.1, seed=4)
    assert len(first) == 10 and first <= set(range(100))


def test_validation_split_leaves_at_least_one_example_on_each_side():
    assert len(held_out_indices(3, 0.01, seed=0)) == 1
    assert len(held_out_indices(3, 0.99, seed=0)) == 2
