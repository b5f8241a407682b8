"""DVC stage `visualize`: training curves, predicted masks for a seeded sample, and the worst test images."""

from pathlib import Path

import pandas as pd

from segpipe import plotting, reports, tfrecords
from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.evaluation import predict_classes
from segpipe.model import load_model


def main() -> None:
    params = load_params()
    prepared = Path(params.paths.prepared)
    manifest = tfrecords.read_manifest(prepared)
    model = load_model(params.paths.model)
    reports.check_model_fits(model, manifest, params.paths.model)
    class_names, dpi = manifest["class_names"], params.visualize.dpi
    plotting.save_figure(plotting.training_curves(reports.live_history(params.paths.live)), params.paths.training_curves, dpi)

    images, masks = tfrecords.sample_split(prepared, manifest, "test", params.visualize.num_examples, params.visualize.seed)
    grid = plotting.prediction_grid(images, masks[..., 0], predict_classes(model, images), class_names)
    plotting.save_figure(grid, params.paths.predictions, dpi)

    worst = pd.read_csv(params.paths.image_iou).sort_values(["mean_iou", "index"]).head(params.visualize.num_worst)
    images, masks = tfrecords.select_examples(prepared, manifest, "test", worst["index"])
    titles = [f"test #{i}: mean IoU {iou:.2f}" for i, iou in zip(worst["index"], worst["mean_iou"])]
    grid = plotting.prediction_grid(images, masks[..., 0], predict_classes(model, images), class_names, titles)
    plotting.save_figure(grid, params.paths.worst, dpi)


if __name__ == "__main__":
    run_stage(main)
