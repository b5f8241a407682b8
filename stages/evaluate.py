"""DVC stage `evaluate`: score the model on the whole test split; write metrics, confusion matrix, IoU tables."""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

import dataclasses
import logging

from segpipe import atomic
from segpipe.config import load_params
from segpipe.evaluation import evaluate_split, write_image_scores
from segpipe.inference import keras_predictor
from segpipe.metrics import class_iou_rows, confusion_rows, segmentation_scores
from segpipe.model import load_model
from segpipe.outputs import refuse_unowned_outputs
from segpipe.prepared import open_prepared
from segpipe.runner import run_main

log = logging.getLogger("segpipe.evaluate")


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths, "evaluate")
    prepared = open_prepared(params.paths.prepared)
    predictor = keras_predictor(load_model(params.paths.model, expect=prepared), params.paths.model)
    cm, image_scores = evaluate_split(predictor, prepared, "test", params.evaluate.batch_size, params.evaluate.tta)
    scores = segmentation_scores(cm, prepared.class_names)
    atomic.write_json(params.paths.eval_metrics, dataclasses.asdict(scores))
    atomic.write_csv(params.paths.confusion, confusion_rows(cm, prepared.class_names))
    atomic.write_csv(params.paths.class_iou, class_iou_rows(scores))
    write_image_scores(params.paths.image_iou, image_scores)
    log.info(
        "%d test images: pixel accuracy %s, mean IoU %s, foreground IoU %s; wrote %s",
        len(image_scores),
        scores.pixel_accuracy,
        scores.mean_iou,
        scores.foreground_iou,
        params.paths.eval_metrics,
    )


if __name__ == "__main__":
    run_main(main)
