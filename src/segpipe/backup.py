"""Resuming a killed training run: the backup of each epoch, committed so that a kill at any moment
leaves a usable one, and the fingerprint that lets only the same run resume it.

Relies on Keras's `BackupAndRestore` beyond its documented API (checked with keras 3.15.1; re-check
when upgrading): it keeps `latest.weights.h5` and `training_metadata.json` (`{"epoch": epochs
completed, ...}`) in its folder, writes both in place after every epoch (weights first), loads them
when `fit` starts, and deletes the folder when `fit` ends. Since a kill can land during either write,
`BackupStamp` commits every epoch as a complete copy of its weights plus a stamp (run, epoch,
digest); a resume restores that copy and the metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path

import keras

from segpipe import atomic
from segpipe.config import ModelConfig, TrainConfig
from segpipe.errors import PipelineError
from segpipe.outputs import BACKUP_STAMP
from segpipe.prepared import SPLITS, PreparedData

log = logging.getLogger(__name__)

BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS = "latest.weights.h5"
# The code that defines a training step (model, loss, data, augmentation, optimizer, fit): a change to any
# of them makes a backup another run's.
FINGERPRINTED_MODULES = (
    "augment",
    "divergence",
    "encoders",
    "input_pipeline",
    "keras_workarounds",
    "losses",
    "model",
    "optimization",
    "tfrecords",
    "training",
)


def run_fingerprint(prepared: PreparedData, model_config: ModelConfig, train: TrainConfig, dtype_policy: str) -> str:
    """A digest of everything that shapes a training run: the prepared data's description and bytes,
    the params and the code that defines the model, the loss, augmentation and the training step.
    A backup is resumed only by the run with the same digest."""
    digest = hashlib.sha256()
    manifest = dataclasses.asdict(dataclasses.replace(prepared, folder=Path(".")))
    settings = {
        "manifest": manifest,
        "model": dataclasses.asdict(model_config),
        "train": dataclasses.asdict(train),
        "dtype_policy": dtype_policy,  # what train.mixed_precision: auto resolved to on this machine
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in SPLITS:
        for shard in prepared.shard_paths(name):
            digest.update(shard.read_bytes())
    for module in FINGERPRINTED_MODULES:
        digest.update((Path(__file__).parent / f"{module}.py").read_bytes())
    return digest.hexdigest()


def resume_epoch(backup_dir: Path, fingerprint: str, exact: bool = True) -> int:
    """The epoch to resume at: the backup's, if it is this very run's and intact; otherwise 0.

    A backup of another run, an incomplete or corrupt one, or any backup when resuming would not be
    exact (`exact` false: dropout's random state and early stopping's counters are not backed up),
    is discarded with a warning and training starts over.
    """
    epochs, problem = restore_backup(backup_dir, fingerprint)
    if epochs and exact:
        log.info("resuming from the backup in %s after epoch %d", backup_dir, epochs)
        return epochs
    if problem:
        log.warning("discarding the backup in %s: %s; training starts at epoch 1", backup_dir, problem)
    elif epochs:
        log.warning(
            "discarding the backup in %s: with model.dropout > 0 or train.early_stopping_patience > 0 a resumed "
            "run would not equal an uninterrupted one; training starts at epoch 1",
            backup_dir,
        )
    start_backup(backup_dir, fingerprint)
    return 0


class BackupStamp(keras.callbacks.Callback):
    """After `BackupAndRestore` saved an epoch, commit it: a complete copy of its weights under the
    epoch's own name, then the stamp that points to that copy (written last, atomically)."""

    def __init__(self, backup_dir: Path, fingerprint: str):
        super().__init__()
        self.backup_dir, self.fingerprint = backup_dir, fingerprint

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        committed = self.backup_dir / f"epoch-{epoch + 1:04d}.weights.h5"
        with atomic.atomic_path(committed) as tmp:
            shutil.copyfile(self.backup_dir / BACKUP_WEIGHTS, tmp)
        stamp = {
            "fingerprint": self.fingerprint,
            "epoch": epoch + 1,
            "weights": committed.name,
            "weights_sha256": _sha256(committed),
        }
        atomic.write_json(self.backup_dir / BACKUP_STAMP, stamp)
        for older in self.backup_dir.glob("epoch-*.weights.h5"):
            if older != committed:
                older.unlink()


def stop_note(backup_dir: Path | None, epoch: int, epochs: int, resumable: bool) -> str:
    """Where a run stopped in `epoch` (from 1) of `epochs`, and from where a rerun with this backup starts."""
    stopped = f"training stopped in epoch {epoch} of {epochs}"
    saved = _stamp(backup_dir).get("epoch", 0) if backup_dir is not None else 0
    if backup_dir is None:
        return f"{stopped}; this run keeps no backup: rerunning starts at epoch 1"
    if not saved:
        return f"{stopped}, before any epoch was saved: rerunning starts at epoch 1"
    if not resumable:  # resume_epoch discards the backup
        return (
            f"{stopped}; rerunning starts at epoch 1 (with model.dropout or train.early_stopping_patience above 0 "
            "a resumed run would not equal an uninterrupted one)"
        )
    return f"{stopped}; rerunning resumes after epoch {saved}, the last one saved (in {backup_dir})"


def start_backup(backup_dir: Path, fingerprint: str) -> None:
    """An empty backup folder stamped as this run's, replacing only a backup of ours."""
    discard_backup(backup_dir)
    backup_dir.mkdir(parents=True)
    atomic.write_json(backup_dir / BACKUP_STAMP, {"fingerprint": fingerprint, "epoch": 0})


def discard_backup(backup_dir: Path) -> None:
    """Delete a backup folder of ours; refuse to touch a folder that is not one."""
    if not backup_dir.exists():
        return
    if not (backup_dir / BACKUP_STAMP).is_file() and (backup_dir.is_file() or any(backup_dir.iterdir())):
        raise PipelineError(
            f"paths.backup ({backup_dir}) exists and is not a training backup (it has no {BACKUP_STAMP}): "
            "move it away or choose another path"
        )
    shutil.rmtree(backup_dir)


def restore_backup(backup_dir: Path, fingerprint: str) -> tuple[int, str | None]:
    """Put this run's last committed epoch back where Keras reads it; return (its epoch, None), or
    (0, why the backup cannot be used). (0, None): there is nothing to resume.

    Whatever a kill interrupted (Keras's in-place weights or metadata, our copy), the stamp still
    points to a complete copy, so a run resumes at its last committed epoch.
    """
    if not (backup_dir / BACKUP_STAMP).is_file():
        return 0, None
    stamp = _stamp(backup_dir)
    if not stamp:
        return 0, f"its {BACKUP_STAMP} is unreadable"
    if stamp.get("fingerprint") != fingerprint:
        return 0, "it was made by another run (other params, data or code)"
    if not stamp.get("epoch"):
        return 0, None
    committed = backup_dir / str(stamp.get("weights"))
    if Path(str(stamp.get("weights"))).name != stamp.get("weights") or _sha256(committed) != stamp.get(
        "weights_sha256"
    ):
        return 0, f"its weights {committed.name} are missing or corrupted"
    with atomic.atomic_path(backup_dir / BACKUP_WEIGHTS) as tmp:
        shutil.copyfile(committed, tmp)
    atomic.write_json(backup_dir / BACKUP_METADATA, {"epoch": stamp["epoch"], "batch": 0})
    return stamp["epoch"], None


def _stamp(backup_dir: Path) -> dict:
    """The backup's stamp, or {} if it has none or it is unreadable."""
    try:
        stamp = json.loads((backup_dir / BACKUP_STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
