"""Small result files the stages write and read (training history, tables) and checks on them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras
import pandas as pd

from segpipe import atomic
from segpipe.errors import DataError

# What train reports for each epoch, on the train split and (prefixed `val_`) the validation split.
HISTORY_METRICS = ("loss", "pixel_accuracy", "mean_iou")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rows with equal keys as CSV (header from the first row), written atomically."""
    with atomic.atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def live_history(live_dir: str | Path) -> pd.DataFrame:
    """DVCLive's per-epoch TSVs as one table: `epoch` (from 1), then each metric and its `val_` twin."""
    plots = Path(live_dir) / "plots" / "metrics"
    columns = {}
    for metric in HISTORY_METRICS:
        for split, column in (("train", metric), ("eval", f"val_{metric}")):
            path = plots / split / f"{metric}.tsv"
            if not path.exists():
                raise DataError(f"{path} not found: run the train stage first")
            columns[column] = pd.read_csv(path, sep="\t").set_index("step")[metric]
    history = pd.DataFrame(columns)
    history.insert(0, "epoch", history.index + 1)
    return history.reset_index(drop=True)


def check_model_fits(model: keras.Model, manifest: dict[str, Any], model_path: str | Path) -> None:
    """Refuse a model whose input size or class count differs from the prepared data."""
    size, classes = manifest["image_size"], len(manifest["class_names"])
    _, height, width, _ = model.input_shape
    outputs = model.output_shape[-1]
    if (height, width, outputs) != (size, size, classes):
        raise DataError(
            f"{model_path} takes {height}x{width} images and predicts {outputs} classes, but the prepared "
            f"data is {size}x{size} with {classes} classes: re-run the train stage"
        )
