"""PNG figures: training curves and predicted masks next to the truth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from segpipe import atomic
from segpipe.errors import DataError
from segpipe.palette import class_colours
from segpipe.training_log import EPOCH_METRICS, metric_tsv


def save_figure(figure: plt.Figure, path: str | Path, dpi: int) -> None:
    """Write a PNG atomically, stamped as the pipeline's, without metadata that would change its bytes between runs."""
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi, metadata={"Software": atomic.PNG_SOFTWARE})
    plt.close(figure)


def read_history(live_dir: str | Path) -> pd.DataFrame:
    """DVCLive's per-epoch logs as one table: `epoch` (from 0, as DVCLive's step and DVC's plots number
    them), then each metric and its `val_` twin."""
    columns = {}
    for metric in EPOCH_METRICS:
        for split, column in (("train", metric), ("eval", f"val_{metric}")):
            path = metric_tsv(live_dir, split, metric)
            if not path.exists():
                raise DataError(f"{path} not found: run the train stage first")
            columns[column] = pd.read_csv(path, sep="\t").set_index("step")[metric]
    history = pd.DataFrame(columns)
    history.insert(0, "epoch", history.index)
    return history.reset_index(drop=True)


METRIC_LABELS = {"loss": "loss", "pixel_accuracy": "pixel accuracy", "mean_iou": "mean IoU"}


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """One panel per metric, train against validation, by epoch (from 0), each panel labelled and with its legend."""
    figure, axes = plt.subplots(1, len(EPOCH_METRICS), figsize=(4 * len(EPOCH_METRICS), 3.2))
    for ax, metric in zip(axes, EPOCH_METRICS, strict=True):
        ax.plot(history["epoch"], history[metric], marker="o", label="train")
        ax.plot(history["epoch"], history[f"val_{metric}"], marker="o", label="validation")
        ax.set_title(f"{METRIC_LABELS[metric]} by epoch")
        ax.set_xlabel("epoch (from 0)")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    return figure


WRONG = (1.0, 0.0, 0.0)  # the colour of a wrongly predicted pixel in the error view


def error_view(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The image in dimmed grey, its wrongly predicted pixels in WRONG: where the model fails, at a glance."""
    grey = image.astype(np.float64).mean(axis=-1, keepdims=True) / 255.0
    view = np.repeat(0.35 + 0.4 * grey, 3, axis=-1)
    view[truth != predicted] = WRONG
    return view


def prediction_grid(
    images: np.ndarray,
    truths: np.ndarray,
    predictions: np.ndarray,
    class_names: list[str],
    row_titles: list[str] | None = None,
) -> plt.Figure:
    """Rows of (image, true mask, predicted mask, errors) with a shared legend and optional row titles
    (over each image: its file name)."""
    rows = len(images)
    colours = class_colours(len(class_names))
    figure, axes = plt.subplots(rows, 4, figsize=(10, 2.6 * rows), squeeze=False)
    for row in range(rows):
        wrong = float(np.mean(truths[row] != predictions[row]))
        titles = ("image", "true mask", "predicted mask", f"errors: {wrong:.0%} of pixels wrong")
        if row_titles:
            titles = (row_titles[row], *titles[1:])
        panels = (images[row], truths[row], predictions[row], error_view(images[row], truths[row], predictions[row]))
        for ax, panel, title in zip(axes[row], panels, titles, strict=True):
            if panel.ndim == 3:
                ax.imshow(panel)
            else:
                ax.imshow(panel, cmap=colours, vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
            ax.set_axis_off()
            ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i)) for i in range(len(class_names))]
    handles.append(plt.Rectangle((0, 0), 1, 1, color=WRONG))
    figure.legend(handles, [*class_names, "wrong pixel"], loc="lower center", ncol=len(class_names) + 1)
    figure.tight_layout(rect=(0, 0.22 / rows, 1, 1))
    return figure
