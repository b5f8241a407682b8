"""The prepare stage's work (preparation.py): the same bytes on every run and with any number of workers, bad
examples stopped or skipped in order, progress logged, and a full disk that keeps the earlier data."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segpipe import progress
from segpipe.errors import DataError, PipelineError
from segpipe.preparation import prepare_dataset
from segpipe.runner import run_main
from tests.helpers import (
    QUIRKY,
    data_config,
    folder_data,
    folder_source,
    masks_set,
    write_masks_folder,
    write_oxford_folder,
    write_tiny_prepared,
)


def test_prepared_output_is_byte_for_byte_deterministic(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets", train={f"cat_{k}": m for k, m in QUIRKY.items()}, test={"dog_1": "RGB"}
    )
    config = data_config(project_params, **folder_source(root))
    prepare_dataset(config, tmp_path / "a")
    prepare_dataset(config, tmp_path / "b")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_preparing_a_split_that_takes_long_logs_its_progress(tmp_path, project_params, monkeypatch, caplog):
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)
    caplog.set_level("INFO", logger="segpipe.preparation")
    root = write_oxford_folder(tmp_path / "pets", train={f"cat_{k}": "RGB" for k in range(5)}, test={"dog_1": "RGB"})
    prepare_dataset(data_config(project_params, **folder_source(root), val_fraction=0.2), tmp_path / "out")
    assert [message.split(", ")[0] for message in caplog.messages if "prepared" in message] == [
        f"train: {done} of 4 images prepared ({done * 25}%)" for done in (1, 2, 3)
    ]


def test_skip_mode_skips_bad_examples_and_records_them(tmp_path, project_params):
    root = write_oxford_folder(
        tmp_path / "pets", train={"cat_1": "RGB", "cat_2": "RGB"}, test={"dog_1": "RGB", "dog_2": "RGB"}
    )
    (root / "images/dog_1.jpg").write_bytes(b"\xff\xd8 truncated")
    prepared = prepare_dataset(
        data_config(project_params, **folder_source(root), on_bad_example="skip"), tmp_path / "out"
    )
    assert prepared.count("test") == 1
    assert [entry["name"] for entry in prepared.skipped["test"]] == ["dog_1.jpg"]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_prepared_bytes_are_the_same_with_one_worker_or_several(tmp_path, project_params):
    train = {f"cat_{i}": mode for i, mode in enumerate(["RGB", "RGBA", "L", "P", "CMYK"] * 3)}
    root = write_oxford_folder(tmp_path / "pets", train=train, test={"dog_1": "RGB", "dog_2": "P"})
    config = data_config(project_params, **folder_source(root), shard_size=4)
    prepare_dataset(config, tmp_path / "one", workers=1)
    prepare_dataset(config, tmp_path / "three", workers=3)
    assert folder_bytes(tmp_path / "one") == folder_bytes(tmp_path / "three")


def test_with_several_workers_the_first_bad_example_in_order_is_reported(tmp_path, project_params):
    train = {f"cat_{i}": "RGB" for i in range(20)}
    root = write_oxford_folder(tmp_path / "pets", train=train, test={"dog_1": "RGB"})
    for name in ("cat_3", "cat_9"):
        (root / f"images/{name}.jpg").write_bytes(b"not an image at all")
    config = data_config(project_params, **folder_source(root), val_fraction=0.5, on_bad_example="skip")
    prepared = prepare_dataset(config, tmp_path / "out", workers=4)
    skipped = [entry["name"] for split in ("train", "val") for entry in prepared.skipped[split]]
    assert sorted(skipped) == ["cat_3.jpg", "cat_9.jpg"]
    with pytest.raises(DataError) as error:
        prepare_dataset(data_config(project_params, **folder_source(root)), tmp_path / "failed", workers=4)
    image = root / "images" / "cat_3.jpg"
    assert str(error.value) == f"{image}: unreadable image (cannot identify image file {str(image)!r})"


def test_a_bad_example_leaves_no_thread_running(tmp_path, project_params):
    root = write_masks_folder(tmp_path / "toy", count=12, num_classes=3)
    Image.new("RGB", (20, 20)).save(root / "masks" / "img_0.png")
    config = data_config(project_params, **folder_source(root, "masks", class_names=["a", "b", "c"]))
    with pytest.raises(
        DataError,
        match=r"img_0\.png: a mask must be a single-channel image of class ids \(mode 1, L, P, .*\), got mode RGB",
    ):
        prepare_dataset(config, tmp_path / "out", workers=3)
    assert [thread.name for thread in threading.enumerate() if thread.name.startswith("prepare")] == []


def test_a_split_left_empty_by_skipping_stops_prepare(tmp_path):
    root = masks_set(tmp_path / "set")
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.full((20, 20), 9, dtype=np.uint8)).save(mask)  # 9 is no class id
    with pytest.raises(PipelineError) as error:
        prepare_dataset(folder_data(root, on_bad_example="skip"), tmp_path / "out")
    assert str(error.value).endswith("no train example left after skipping 1")


def test_a_full_disk_under_the_tfrecord_writer_is_one_line_and_keeps_the_earlier_data(tmp_path, monkeypatch, caplog):
    earlier = write_tiny_prepared(tmp_path / "data" / "prepared")
    manifest = (earlier.folder / "manifest.json").read_bytes()
    real_writer = tf.io.TFRecordWriter

    class FullDisk(real_writer):
        def write(self, record):
            raise tf.errors.ResourceExhaustedError(None, None, f"{self._path}; No space left on device")

        def __init__(self, path, *args, **kwargs):
            super().__init__(path, *args, **kwargs)
            self._path = path

    monkeypatch.setattr(tf.io, "TFRecordWriter", FullDisk)
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: prepare_dataset(folder_data(masks_set(tmp_path / "set")), earlier.folder))
    assert exit_status.value.code == 1
    message = caplog.records[-1].getMessage()
    assert message.startswith("cannot write or read a file: ") and message.endswith("; No space left on device")
    assert (earlier.folder / "manifest.json").read_bytes() == manifest
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["prepared"]
