"""What training logs beside the model: DVCLive's per-epoch metrics.

Relies on DVCLive beyond its documented API (checked with dvclive 3.49.1; re-check when upgrading):
- DVCLive writes one TSV per metric, `plots/metrics/{train,eval}/NAME.tsv` under its folder, with
  a header row and then rows `step<TAB>value...`; its Keras callback logs `val_NAME` under `eval/`.
- DVCLive's `Live.step` is a plain attribute: set before the first epoch, it numbers the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dvclive.keras import DVCLiveCallback

from segpipe import atomic

# What train logs after every epoch, on the train split and (as `val_NAME`) the validation split.
EPOCH_METRICS = ("loss", "pixel_accuracy", "mean_iou")
LogSplit = Literal["train", "eval"]  # DVCLive's folder names for the train and validation metrics


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
