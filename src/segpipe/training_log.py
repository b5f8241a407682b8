"""What training leaves beside the model: DVCLive's per-epoch logs and Keras's backup of the run.

This is the one place that relies on Keras and DVCLive beyond their documented APIs. Checked with
keras 3.15.1 and dvclive 3.49.1 (requirements.txt); re-check these when upgrading either:
- DVCLive writes one TSV per metric, `plots/metrics/{train,eval}/NAME.tsv` under its folder, with
  a header row and then rows `step<TAB>value...`; its Keras callback logs `val_NAME` under `eval/`.
- DVCLive's `Live.step` is a plain attribute: set before the first epoch, it numbers the rows.
- Keras's `BackupAndRestore` keeps `training_metadata.json` (`{"epoch": epochs completed, ...}`)
  in its backup folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from dvclive.keras import DVCLiveCallback

from segpipe import atomic

# What train logs after every epoch, on the train split and (as `val_NAME`) the validation split.
EPOCH_METRICS = ("loss", "pixel_accuracy", "mean_iou")
LogSplit = Literal["train", "eval"]  # DVCLive's folder names for the train and validation metrics
BACKUP_METADATA = "training_metadata.json"


def metric_tsv(live_dir: str | Path, split: LogSplit, metric: str) -> Path:
    """The TSV in which DVCLive logs `metric` of `split`, one row per epoch."""
    return Path(live_dir) / "plots" / "metrics" / split / f"{metric}.tsv"


def live_callback(live_dir: str | Path, start_epoch: int) -> DVCLiveCallback:
    """DVCLive's Keras callback; on resume, its logs continue at `start_epoch` with no gap or repeat."""
    if start_epoch:
        for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
            rows = tsv.read_text().splitlines()
            kept = [rows[0]] + [row for row in rows[1:] if int(row.split("\t")[0]) < start_epoch]
            atomic.write_text(tsv, "\n".join(kept) + "\n")
    # dvc.yaml stays hand-written (dvcyaml=False); DVC itself records experiments (save_dvc_exp=False).
    callback = DVCLiveCallback(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, resume=bool(start_epoch))
    callback.live.step = start_epoch
    return callback


def backed_up_epochs(backup_dir: Path) -> int | None:
    """How many epochs the run backed up in `backup_dir` had completed, or None if there is no backup."""
    metadata = backup_dir / BACKUP_METADATA
    if not metadata.exists():
        return None
    return int(json.loads(metadata.read_text())["epoch"])
