"""DVC stage `visualize`: training curves, predicted masks for a seeded sample, and the worst test images."""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

import logging

from segpipe import plotting
from segpipe.config import load_params
from segpipe.evaluation import predict_classes, read_image_scores, worst_images
from segpipe.inference import keras_predictor
from segpipe.model import load_model
from segpipe.outputs import refuse_unowned_outputs
from segpipe.prepared import open_prepared
from segpipe.runner import run_main

log = logging.getLogger("segpipe.visualize")


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths, "visualize")
    prepared = open_prepared(params.paths.prepared)
    predictor = keras_predictor(load_model(params.paths.model, expect=prepared), params.paths.model)
    classes, dpi, tta = prepared.class_names, params.visualize.dpi, params.evaluate.tta
    curves = plotting.training_curves(plotting.read_history(params.paths.live))
    plotting.save_figure(curves, params.paths.training_curves, dpi)

    names = prepared.file_names("test")
    shown = prepared.sample_indices("test", params.visualize.num_examples, params.visualize.seed)
    images, masks = prepared.select("test", shown)
    predicted = predict_classes(predictor, images, tta)
    grid = plotting.prediction_grid(images, masks[..., 0], predicted, classes, [names[index] for index in shown])
    plotting.save_figure(grid, params.paths.predictions, dpi)

    worst = worst_images(read_image_scores(params.paths.image_iou), params.visualize.num_worst)
    images, masks = prepared.select("test", [score.index for score in worst])
    titles = [f"{score.file_name}: mean IoU {score.mean_iou:.2f}" for score in worst]
    predicted = predict_classes(predictor, images, tta)
    grid = plotting.prediction_grid(images, masks[..., 0], predicted, classes, titles)
    plotting.save_figure(grid, params.paths.worst, dpi)
    log.info("wrote %s", ", ".join(str(path) for path in params.paths.figures().values()))


if __name__ == "__main__":
    run_main(main)
