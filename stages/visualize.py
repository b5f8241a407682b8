"""DVC stage `visualize`: draw the training curves, and predicted masks for a seeded sample of test images."""

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
    history = pd.read_csv(params.paths.history)
    plotting.save_figure(plotting.training_curves(history), params.paths.training_curves, params.visualize.dpi)
    images, masks = tfrecords.sample_split(prepared, manifest, "test", params.visualize.num_examples, params.visualize.seed)
    grid = plotting.prediction_grid(images, masks[..., 0], predict_classes(model, images), manifest["class_names"])
    plotting.save_figure(grid, params.paths.predictions, params.visualize.dpi)


if __name__ == "__main__":
    run_stage(main)
