"""What training leaves beside the model: DVCLive's per-epoch logs and Keras's backup of the run.

This is the one place that relies on Keras and DVCLive beyond their documented APIs. Checked with
keras 3.15.1 and dvclive 3.49.1 (requirements/runtime.in); re-check these when upgrading either:
- DVCLive writes one TSV per metric, `plots/metrics/{train,eval}/NAME.tsv` under its folder, with
  a header row and then rows `step<TAB>value...`; its Keras callback logs `val_NAME` under `eval/`.
- DVCLive's `Live.step` is a plain attribute: set before the first epoch, it numbers the rows.
- Keras's `BackupAndRestore` keeps `latest.weights.h5` and `training_metadata.json`
  (`{"epoch": epochs completed, ...}`) in its backup folder, writes both in place after every
  epoch (weights first), loads them when `fit` starts, and deletes the folder when `fit` ends.
  Since a kill can land during either write, `BackupStamp` commits every epoch as a complete copy
  of its weights plus a stamp (run, epoch, digest); a resume restores that copy and the metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Literal

import keras
from dvclive.keras import DVCLiveCallback

from segpipe import atomic
from segpipe.errors import PipelineError
from segpipe.outputs import BACKUP_STAMP

log = logging.getLogger(__name__)

# What train logs after every epoch, on the train split and (as `val_NAME`) the validation split.
EPOCH_METRICS = ("loss", "pixel_accuracy", "mean_iou")
LogSplit = Literal["train", "eval"]  # DVCLive's folder names for the train and validation metrics
BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS = "latest.weights.h5"


def metric_tsv(live_dir: str | Path, split: LogSplit, metric: str) -> Path:
    """The TSV in which DVCLive logs `metric` of `split`, one row per epoch."""
    return Path(live_dir) / "plots" / "metrics" / split / f"{metric}.tsv"


def live_callback(live_dir: str | Path, start_epoch: int) -> DVCLiveCallback:
    """DVCLive's Keras callback; on resume, its logs continue at `start_epoch` with no gap or repeat.

    A fresh run's DVCLive deletes its own file names in `live_dir`: the train stage has refused a
    folder that is not DVCLive's before (`outputs.refuse_unowned_outputs`).
    """
    if start_epoch:
        for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
            rows = tsv.read_text().splitlines()
            kept = [rows[0]] + [row for row in rows[1:] if int(row.split("\t")[0]) < start_epoch]
            atomic.write_text(tsv, "\n".join(kept) + "\n")
    # dvc.yaml stays hand-written (dvcyaml=False); DVC itself records experiments (save_dvc_exp=False).
    callback = DVCLiveCallback(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=bool(start_epoch))
    callback.live.step = start_epoch
    return callback


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
