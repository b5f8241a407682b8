"""The figures say what they show: epochs from 0 with labelled axes and a legend per panel, images named,
and an error view of the wrong pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from segpipe import plotting
from segpipe.training_log import EPOCH_METRICS, metric_tsv


def write_live_logs(live_dir, epochs: int) -> None:
    for metric in EPOCH_METRICS:
        for split in ("train", "eval"):
            path = metric_tsv(live_dir, split, metric)
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = "".join(f"{step}\t{1.0 / (step + 1)}\n" for step in range(epochs))
            path.write_text(f"step\t{metric}\n{rows}")


def test_epochs_are_numbered_from_0_as_dvclive_and_dvc_plots_number_them(tmp_path):
    write_live_logs(tmp_path, epochs=3)
    history = plotting.read_history(tmp_path)
    assert history["epoch"].tolist() == [0, 1, 2]
    assert history["val_loss"].tolist() == [1.0, 0.5, 1 / 3]


def test_every_training_curve_panel_has_axis_labels_and_a_legend():
    history = pd.DataFrame({"epoch": [0, 1], **{m: [1.0, 0.5] for m in EPOCH_METRICS}})
    history = history.assign(**{f"val_{m}": [0.9, 0.6] for m in EPOCH_METRICS})
    axes = plotting.training_curves(history).axes
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes] == [
        ("epoch (from 0)", "loss"),
        ("epoch (from 0)", "pixel accuracy"),
        ("epoch (from 0)", "mean IoU"),
    ]
    assert [[text.get_text() for text in ax.get_legend().get_texts()] for ax in axes] == [["train", "validation"]] * 3


def test_the_error_view_paints_exactly_the_wrong_pixels():
    image = np.full((2, 2, 3), 255, np.uint8)
    truth = np.array([[0, 1], [2, 0]])
    predicted = np.array([[0, 1], [0, 1]])
    view = plotting.error_view(image, truth, predicted)
    assert view[1, 0].tolist() == view[1, 1].tolist() == list(plotting.WRONG)
    assert view[0, 0].tolist() == view[0, 1].tolist() == [0.75, 0.75, 0.75]  # right: the image, dimmed grey


def test_each_row_shows_the_image_under_its_name_the_masks_and_the_errors():
    images = np.zeros((2, 4, 4, 3), np.uint8)
    truths = np.zeros((2, 4, 4), np.int64)
    predictions = truths.copy()
    predictions[1, :2] = 1  # half the second image wrong
    figure = plotting.prediction_grid(images, truths, predictions, ["pet", "background"], ["cat_1.jpg", "dog_2.jpg"])
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "cat_1.jpg",
        "true mask",
        "predicted mask",
        "errors: 0% of pixels wrong",
        "dog_2.jpg",
        "true mask",
        "predicted mask",
        "errors: 50% of pixels wrong",
    ]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["pet", "background", "wrong pixel"]
