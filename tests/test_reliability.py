"""No setting deletes what is not ours, a stale or broken backup is never resumed, a diverging run keeps no model."""

from __future__ import annotations

import json
import logging
import zipfile

import numpy as np
import pytest
import yaml

from segpipe import atomic
from segpipe.backup import BACKUP_METADATA, BACKUP_WEIGHTS, BackupStamp, restore_backup, resume_epoch, run_fingerprint
from segpipe.config import load_params, params_from_dict
from segpipe.errors import ConfigError, PipelineError
from tests.helpers import ROOT, TINY, merged, run_script, write_tiny_prepared


def params_with(changes: dict):
    raw = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), changes)
    return params_from_dict(raw)


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ({"backup": "data"}, "paths.backup (data) overlaps paths.checked (data/checked.json): outputs must be apart"),
        ({"model": "/tmp/model.keras"}, "paths.model must be a relative path inside the project"),
        ({"export": "../elsewhere"}, "paths.export must be a relative path inside the project"),
        ({"live": "."}, "paths.live must be a relative path inside the project"),
        ({"prepared": "src/prepared"}, "paths.prepared must be a relative path inside the project"),
        ({"confusion": "plots/image_iou.csv"}, "paths.confusion (plots/image_iou.csv) overlaps paths.image_iou"),
        ({"prepared": "data", "checked": "models/checked.json"}, "paths.prepared (data) contains data.input"),
    ],
)
def test_output_paths_that_could_destroy_data_are_refused_at_load(paths, message):
    with pytest.raises(ConfigError) as error:
        params_with({"paths": paths}).validate()
    assert str(error.value).startswith(message)


def test_the_project_paths_pass():
    load_params(ROOT / "params.yaml")


def test_leftovers_of_a_killed_writer_are_swept_when_the_output_is_written_again(tmp_path):
    (tmp_path / ".metrics.json.k2x9.tmp").write_text("half a file")
    (tmp_path / ".model.keras.a1b2.tmp.keras").write_text("half a model")
    (tmp_path / ".prepared.old").mkdir()
    (tmp_path / "unrelated.tmp").write_text("not ours")
    atomic.write_json(tmp_path / "metrics.json", {"a": 1})
    atomic.sweep_leftovers(tmp_path / "model.keras")
    atomic.sweep_leftovers(tmp_path / "prepared")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json", "unrelated.tmp"]


def test_a_folder_not_written_by_the_pipeline_is_never_replaced(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("precious")
    with pytest.raises(PipelineError) as error, atomic.atomic_dir(tmp_path / "photos", "manifest.json"):
        pass
    assert str(error.value) == (
        f"{tmp_path / 'photos'} exists and was not written by this pipeline (it has no manifest.json): "
        "move it away or choose another path"
    )
    assert (tmp_path / "photos" / "cat.jpg").read_text() == "precious"


def test_the_fingerprint_changes_with_the_prepared_bytes_not_only_the_manifest(tmp_path):
    prepared = write_tiny_prepared(tmp_path / "prepared", per_split=2)
    params = params_with(TINY)
    before = run_fingerprint(prepared, params.model, params.train, "float32")
    shard = prepared.shard_paths("train")[0]
    data = bytearray(shard.read_bytes())
    data[60] ^= 0x01  # one pixel, same names and counts
    shard.write_bytes(bytes(data))
    assert run_fingerprint(prepared, params.model, params.train, "float32") != before


def fake_backup(folder, fingerprint="run", epoch=2, weights=b"weights"):
    """A backup as Keras and BackupStamp leave it once `epoch` epochs are committed: Keras's weights and
    metadata (here bytes standing for them), then BackupStamp's committed copy and stamp."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BACKUP_WEIGHTS).write_bytes(weights)
    (folder / BACKUP_METADATA).write_text(json.dumps({"epoch": epoch, "batch": 0}))
    BackupStamp(folder, fingerprint).on_epoch_end(epoch - 1)
    return folder


def test_an_intact_backup_of_this_run_is_resumed(tmp_path):
    assert restore_backup(fake_backup(tmp_path / "b"), "run") == (2, None)


def test_a_backup_from_other_params_is_discarded_with_a_warning_and_training_starts_over(tmp_path, caplog):
    backup = fake_backup(tmp_path / "b", fingerprint="another run")
    with caplog.at_level(logging.WARNING):
        assert resume_epoch(backup, "run") == 0
    assert caplog.messages == [
        f"discarding the backup in {backup}: it was made by another run (other params, data or code); "
        "training starts at epoch 1"
    ]
    assert sorted(path.name for path in backup.iterdir()) == ["run.json"]
    assert json.loads((backup / "run.json").read_text()) == {"epoch": 0, "fingerprint": "run"}


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: (b / "latest.weights.h5").write_bytes(b"half"),  # killed while Keras wrote the weights
        lambda b: (b / "training_metadata.json").write_text(""),  # killed while Keras wrote the metadata
        lambda b: (b / "training_metadata.json").unlink(),
    ],
    ids=["weights half written", "metadata empty", "metadata missing"],
)
def test_a_backup_killed_mid_write_resumes_from_its_last_committed_epoch(tmp_path, damage):
    backup = fake_backup(tmp_path / "b")
    damage(backup)
    assert restore_backup(backup, "run") == (2, None)
    assert (backup / "latest.weights.h5").read_bytes() == b"weights"
    assert json.loads((backup / "training_metadata.json").read_text()) == {"epoch": 2, "batch": 0}


DAMAGED_WEIGHTS = "its weights epoch-0002.weights.h5 are missing or corrupted"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: (b / "epoch-0002.weights.h5").write_bytes(b"flipped"), DAMAGED_WEIGHTS),
        (lambda b: (b / "epoch-0002.weights.h5").unlink(), DAMAGED_WEIGHTS),
        (lambda b: (b / "run.json").write_text("{"), "its run.json is unreadable"),
    ],
    ids=["committed weights corrupted", "committed weights missing", "stamp unreadable"],
)
def test_a_corrupt_backup_is_not_resumed(tmp_path, damage, reason):
    backup = fake_backup(tmp_path / "b")
    damage(backup)
    assert restore_backup(backup, "run") == (0, reason)


def test_a_corrupt_backup_is_discarded_with_a_warning_and_training_starts_over(tmp_path, caplog):
    backup = fake_backup(tmp_path / "b")
    (backup / "epoch-0002.weights.h5").write_bytes(b"flipped")
    with caplog.at_level(logging.WARNING):
        assert resume_epoch(backup, "run") == 0
    assert caplog.messages == [f"discarding the backup in {backup}: {DAMAGED_WEIGHTS}; training starts at epoch 1"]
    assert sorted(path.name for path in backup.iterdir()) == ["run.json"]


def test_without_exact_resume_a_good_backup_restarts_training_and_says_so(tmp_path, caplog):
    backup = fake_backup(tmp_path / "b")
    with caplog.at_level(logging.WARNING):
        assert resume_epoch(backup, "run", exact=False) == 0
    assert "with model.dropout > 0 or train.early_stopping_patience > 0 a resumed run would not equal" in caplog.text


def test_a_backup_folder_that_is_not_ours_is_refused_not_deleted(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("precious")
    with pytest.raises(PipelineError) as error:
        resume_epoch(tmp_path / "data", "run")
    assert str(error.value) == (
        f"paths.backup ({tmp_path / 'data'}) exists and is not a training backup (it has no run.json): "
        "move it away or choose another path"
    )
    assert (tmp_path / "data" / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_a_diverging_run_stops_in_one_line_and_keeps_no_model(tmp_path):
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["train"].update(epochs=3, learning_rate=1e30)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_script("stages/prepare.py", tmp_path).returncode == 0
    (tmp_path / "models").mkdir()
    with zipfile.ZipFile(tmp_path / "models" / "model.keras", "w") as earlier:  # an earlier run's model
        earlier.writestr("config.json", "{}")
        earlier.writestr("metadata.json", "{}")
    result = run_script("stages/train.py", tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR segpipe: training diverged in epoch 1 (loss ")
    assert last.endswith("): no model saved; lower train.learning_rate (now 1e+30)")
    assert not (tmp_path / "models" / "model.keras").exists()
    assert not (tmp_path / "models" / ".backup").exists()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG file whose header claims `width`×`height` pixels but that holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_an_image_over_the_limit_is_refused_from_its_header(tmp_path):
    from segpipe.images import read_rgb

    (tmp_path / "big.png").write_bytes(png_header_claiming(10000, 5000))
    with pytest.raises(PipelineError) as error:
        read_rgb(tmp_path / "big.png", max_pixels=40_000_000)
    assert (
        str(error.value) == f"{tmp_path / 'big.png'}: 10000x5000 is 50.0 megapixels, above the limit of 40 megapixels"
    )


def test_a_decompression_bomb_is_one_line_not_a_traceback(tmp_path):
    from segpipe.images import read_rgb

    (tmp_path / "bomb.png").write_bytes(png_header_claiming(20000, 10000))
    with pytest.raises(PipelineError) as error:
        read_rgb(tmp_path / "bomb.png")
    assert str(error.value).startswith(f"{tmp_path / 'bomb.png'}: unreadable image (Image size (200000000 pixels)")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("drawn_on", ["stored pixels", "upright photo"])
def test_a_rotated_photo_and_its_mask_come_out_upright_together(tmp_path, drawn_on):
    from PIL import Image

    from segpipe.images import read_pair

    stored = np.zeros((2, 4, 3), dtype=np.uint8)  # 4 wide, 2 high as stored
    stored[0, 0] = 255  # a marker in the stored top-left corner
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated by 90°: 2 wide, 4 high
    image.save(tmp_path / "photo.png", exif=exif.tobytes())
    mask = (stored[..., 0] > 0).astype(np.uint8)
    upright_mask = np.asarray(Image.fromarray(mask).transpose(Image.Transpose.ROTATE_270))
    Image.fromarray(mask if drawn_on == "stored pixels" else upright_mask).save(tmp_path / "mask.png")
    pixels, labels = read_pair(tmp_path / "photo.png", tmp_path / "mask.png")
    assert pixels.shape == (4, 2, 3) and labels.shape == (4, 2, 1)
    np.testing.assert_array_equal(labels[..., 0], (pixels[..., 0] > 0).astype(np.uint8))


def masks_set(root, count=4):
    from tests.helpers import write_masks_folder

    return write_masks_folder(root, count=count, num_classes=3)


def folder_data(root, **changes):
    folder = {"layout": "masks", "class_names": ["a", "b", "c"], "test_fraction": 0.5}
    params = params_with(merged(TINY, {"data": {"source": "folder", "input": str(root), "folder": folder, **changes}}))
    params.validate()
    return params.data


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    from segpipe.preparation import prepare_dataset

    root = masks_set(tmp_path / "set")
    outside = tmp_path / "secret.png"
    (root / "images" / "img_0.png").rename(outside)
    (root / "images" / "img_0.png").symlink_to(outside)
    with pytest.raises(PipelineError) as error:
        prepare_dataset(folder_data(root), tmp_path / "out")
    assert str(error.value) == f"{root / 'images' / 'img_0.png'}: a link to {outside}, outside {root}: refused"


def test_hidden_files_are_ignored_and_names_with_spaces_accepted(tmp_path):
    from segpipe.preparation import prepare_dataset

    root = masks_set(tmp_path / "set")
    (root / "images" / "._img_0.png").write_bytes(b"macOS resource fork")
    (root / "images" / "img_1.png").rename(root / "images" / "my cat.png")
    (root / "masks" / "img_1.png").rename(root / "masks" / "my cat.png")
    prepared = prepare_dataset(folder_data(root), tmp_path / "out")
    assert prepared.count("train") + prepared.count("val") + prepared.count("test") == 4
    assert prepared.missing == {"train": [], "test": []}  # the hidden file is not an image lacking its mask


def test_a_split_left_empty_by_skipping_stops_prepare(tmp_path):
    from PIL import Image

    from segpipe.preparation import prepare_dataset

    root = masks_set(tmp_path / "set")
    for mask in (root / "masks").iterdir():
        Image.fromarray(np.full((20, 20), 9, dtype=np.uint8)).save(mask)  # 9 is no class id
    with pytest.raises(PipelineError) as error:
        prepare_dataset(folder_data(root, on_bad_example="skip"), tmp_path / "out")
    assert str(error.value).endswith("no train example left after skipping 1")


def test_a_tensorflow_file_error_is_one_line(caplog):
    import tensorflow as tf

    from segpipe.runner import run_main

    def write() -> None:
        raise tf.errors.PermissionDeniedError(None, None, "models/x.tfrecord; Permission denied")

    with pytest.raises(SystemExit) as exit_status:
        run_main(write)
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage() == "cannot write or read a file: models/x.tfrecord; Permission denied"


def test_a_folder_named_like_a_model_is_one_line(tmp_path):
    from segpipe.model import load_model

    (tmp_path / "model.keras").mkdir()
    with pytest.raises(PipelineError) as error:
        load_model(tmp_path / "model.keras")
    assert str(error.value).startswith(f"{tmp_path / 'model.keras'}: not a loadable Keras model (")


def test_a_full_disk_under_the_tfrecord_writer_is_one_line_and_keeps_the_earlier_data(tmp_path, monkeypatch, caplog):
    import tensorflow as tf

    from segpipe.preparation import prepare_dataset
    from segpipe.runner import run_main

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


def test_a_full_disk_while_keras_saves_the_model_keeps_the_earlier_model(tmp_path, monkeypatch, caplog):
    import errno

    import keras

    from segpipe.model import build_unet, save_model
    from segpipe.prepared import Normalization
    from segpipe.runner import run_main

    target = tmp_path / "model.keras"
    target.write_bytes(b"the earlier model")
    model = build_unet(8, 3, params_with(TINY).model, Normalization(scale=1 / 255, offset=0.0))

    def full_disk(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: save_model(model, target, ("a", "b", "c")))
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage().endswith("No space left on device")
    assert target.read_bytes() == b"the earlier model"
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]
