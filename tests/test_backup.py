"""Resuming a killed run (backup.py): an intact backup of this run is resumed; one made by other params, data
or code, a damaged one, or a folder that is not a backup never is."""

from __future__ import annotations

import json
import logging

import pytest

from segpipe.backup import BACKUP_METADATA, BACKUP_WEIGHTS, BackupStamp, restore_backup, resume_epoch, run_fingerprint
from segpipe.errors import PipelineError
from tests.helpers import TINY, params_with, write_tiny_prepared


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
