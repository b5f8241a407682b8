"""Small result files the stages write (history, metrics tables) and checks on what they read."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras

from segpipe import atomic
from segpipe.errors import DataError


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rows with equal keys as CSV (header from the first row), written atomically."""
    with atomic.atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """Per-epoch training history, one row per epoch, for `dvc plots`."""
    write_csv(path, [{"epoch": row["epoch"], **_rounded_values(row, skip="epoch")} for row in history])


def final_training_metrics(history: list[dict[str, float]]) -> dict[str, Any]:
    """The last epoch's train and validation metrics, nested as `train.*` and `val.*`."""
    last = _rounded_values(history[-1], skip="epoch")
    return {
        "epochs": history[-1]["epoch"],
        "train": {key: value for key, value in last.items() if not key.startswith("val_")},
        "val": {key[4:]: value for key, value in last.items() if key.startswith("val_")},
    }


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


def _rounded_values(row: dict[str, float], skip: str) -> dict[str, float]:
    """Every value but `skip`'s, rounded to 6 decimals: stable text, no false precision."""
    return {key: round(float(value), 6) for key, value in row.items() if key != skip}
