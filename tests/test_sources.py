"""Real ways in: image folders in the oxford and masks layouts, and Oxford-IIIT Pet through TFDS."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from segpipe import images, progress
from segpipe.config import params_from_dict
from segpipe.errors import DataError
from segpipe.preparation import prepare_dataset
from segpipe.prepared import open_prepared
from tests.helpers import RED, SHARED_SAMPLE, merged, save_image, split_counts, write_masks_folder, write_oxford_folder

QUIRKY = {"rgb": "RGB", "gray": "L", "cmyk": "CMYK", "rgba_png": "RGBA", "palette_png": "P", "palette_gif": "GIF"}


def data_config(project_params, **data_changes):
    params = params_from_dict(merged(project_params, {"data": {"image_size": 16, **data_changes}}))
    params.validate()
    return params.data


def folder(path, layout="oxford", **folder_changes):
    return {"source": "folder", "input": str(path), "folder": {"layout": layout, **folder_changes}}


def stored(folder, split):
    return list(open_prepared(folder).examples(split).as_numpy_iterator())


@pytest.mark.parametrize("mode", sorted(QUIRKY.values()))
def test_every_image_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / "photo.jpg"  # PNG and GIF data behind a .jpg name, as in the real archives
    save_image(path, mode)
    pixels = images.read_rgb(path)
    assert pixels.shape == (20, 24, 3) and pixels.dtype == np.uint8
    if mode in ("RGB", "RGBA", "CMYK"):
        np.testing.assert_allclose(pixels[10, 12], RED, atol=12)


def test_oxford_folder_prepares_listed_examples_and_reports_missing_ones(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets",
        train={f"cat_{k}": m for k, m in QUIRKY.items()},
        test={"dog_1": "RGB", "dog_2": "RGBA"},
        absent=("ghost_1",),
    )
    prepared = prepare_dataset(data_config(project_params, **folder(root), val_fraction=0.2), tmp_path / "out")
    assert split_counts(prepared) == {"train": 5, "val": 1, "test": 2}
    assert prepared.missing == {"train": ["ghost_1.jpg"], "test": []}
    assert prepared.class_names == ("pet", "background", "border")
    expected = images.resize_mask(np.array(Image.open(root / "annotations/trimaps/dog_1.png"))[..., None] - 1, 16)
    (image, mask), _ = stored(tmp_path / "out", "test")
    np.testing.assert_array_equal(mask, expected)
    assert image.shape == (16, 16, 3)


def test_prepared_output_is_byte_for_byte_deterministic(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets", train={f"cat_{k}": m for k, m in QUIRKY.items()}, test={"dog_1": "RGB"}
    )
    config = data_config(project_params, **folder(root))
    prepare_dataset(config, tmp_path / "a")
    prepare_dataset(config, tmp_path / "b")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_preparing_a_split_that_takes_long_logs_its_progress(tmp_path, project_params, monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    caplog.set_level("INFO", logger="segpipe.preparation")
    root = write_oxford_folder(tmp_path / "pets", train={f"cat_{k}": "RGB" for k in range(5)}, test={"dog_1": "RGB"})
    prepare_dataset(data_config(project_params, **folder(root), val_fraction=0.2), tmp_path / "out")
    assert [message.split(", ")[0] for message in caplog.messages if "prepared" in message] == [
        f"train: {done} of 4 images prepared ({done * 25}%)" for done in (1, 2, 3)
    ]


def test_masks_layout_takes_class_names_from_params_and_holds_out_a_seeded_test_split(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=10, num_classes=5)
    names = ["sky", "road", "car", "tree", "house"]
    config = data_config(project_params, **folder(root, "masks", class_names=names, test_fraction=0.3))
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
    config = data_config(project_params, **folder(root, "masks", class_names=["a", "b", "c"], test_fraction=0.3))
    prepared = prepare_dataset(config, tmp_path / "out")
    assert sum(split_counts(prepared).values()) == len(images.IMAGE_SUFFIXES)


def test_mask_of_another_size_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    Image.fromarray(np.full((7, 9), 2, dtype=np.uint8)).save(root / "annotations/trimaps/cat_2.png")
    with pytest.raises(DataError, match=r"cat_2\.jpg: image is 24x20 but its mask is 9x7"):
        prepare_dataset(data_config(project_params, **folder(root)), tmp_path / "out")


def test_mask_value_outside_the_class_ids_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=4, num_classes=5)
    config = data_config(project_params, **folder(root, "masks", class_names=["a", "b", "c"]))
    with pytest.raises(DataError, match=r"img_\d\.png: mask value 4 is not a class id \(0\.\.2\)"):
        prepare_dataset(config, tmp_path / "out")


def test_unreadable_image_is_an_error_naming_the_file(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    (root / "images/dog_1.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"dog_1\.jpg: unreadable image"):
        prepare_dataset(data_config(project_params, **folder(root)), tmp_path / "out")


def test_skip_mode_skips_bad_examples_and_records_them(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB", "dog_2": "RGB"}
    )
    (root / "images/dog_1.jpg").write_bytes(b"\xff\xd8 truncated")
    prepared = prepare_dataset(data_config(project_params, **folder(root), on_bad_example="skip"), tmp_path / "out")
    assert prepared.count("test") == 1
    assert [entry["name"] for entry in prepared.skipped["test"]] == ["dog_1.jpg"]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_prepared_bytes_are_the_same_with_one_worker_or_several(tmp_path, project_params):
    train = {f"cat_{i}": mode for i, mode in enumerate(["RGB", "RGBA", "L", "P", "CMYK"] * 3)}
    root = write_oxford_folder(tmp_path / "pets", train=train, test={"dog_1": "RGB", "dog_2": "P"})
    config = data_config(project_params, **folder(root), shard_size=4)
    prepare_dataset(config, tmp_path / "one", workers=1)
    prepare_dataset(config, tmp_path / "three", workers=3)
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "three")


def test_with_several_workers_the_first_bad_example_in_order_is_reported(tmp_path, project_params):
    train = {f"cat_{i}": "RGB" for i in range(20)}
    root = write_oxford_folder(tmp_path / "pets", train=train, test={"dog_1": "RGB"})
    for name in ("cat_3", "cat_9"):
        (root / f"images/{name}.jpg").write_bytes(b"not an image at all")
    config = data_config(project_params, **folder(root), val_fraction=0.5, on_bad_example="skip")
    prepared = prepare_dataset(config, tmp_path / "out", workers=4)
    skipped = [entry["name"] for split in ("train", "val") for entry in prepared.skipped[split]]
    assert sorted(skipped) == ["cat_3.jpg", "cat_9.jpg"]
    with pytest.raises(DataError) as error:
        prepare_dataset(data_config(project_params, **folder(root)), tmp_path / "failed", workers=4)
    image = root / "images" / "cat_3.jpg"
    assert str(error.value) == f"{image}: unreadable image (cannot identify image file {str(image)!r})"


def test_a_bad_example_leaves_no_thread_running(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=12, num_classes=3)
    Image.new("RGB", (20, 20)).save(root / "masks" / "img_0.png")
    config = data_config(project_params, **folder(root, "masks", class_names=["a", "b", "c"]))
    with pytest.raises(
        DataError,
        match=r"img_0\.png: a mask must be a single-channel image of class ids \(mode 1, L, P, .*\), got mode RGB",
    ):
        prepare_dataset(config, tmp_path / "out", workers=3)
    assert [thread.name for thread in threading.enumerate() if thread.name.startswith("prepare")] == []


def test_entry_names_that_leave_the_folder_are_refused(tmp_path, project_params):
    root = write_oxford_folder(tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB"})
    with (root / "annotations/test.txt").open("a") as handle:
        handle.write("../../secret 1 1 1\n")
    with pytest.raises(DataError, match=r"test\.txt:3: refusing entry name '\.\./\.\./secret'"):
        prepare_dataset(data_config(project_params, **folder(root)), tmp_path / "out")


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
    prepared = prepare_dataset(data_config(project_params, **folder(SHARED_SAMPLE)), tmp_path / "out")
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
