"""DVC stage `evaluate`: score the model on the whole test split; write metrics, confusion matrix, IoU tables."""

from pathlib import Path

from segpipe import atomic, reports, tfrecords
from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.evaluation import evaluate_images
from segpipe.metrics import confusion_rows, segmentation_scores
from segpipe.model import load_model


def main() -> None:
    params = load_params()
    prepared = Path(params.paths.prepared)
    manifest = tfrecords.read_manifest(prepared)
    model = load_model(params.paths.model)
    reports.check_model_fits(model, manifest, params.paths.model)
    class_names = manifest["class_names"]
    test = tfrecords.batched_split(prepared, manifest, "test", params.evaluate.batch_size)
    cm, image_iou = evaluate_images(model, test, len(class_names))
    scores = segmentation_scores(cm, class_names)
    atomic.write_json(params.paths.eval_metrics, scores)
    reports.write_csv(params.paths.confusion, confusion_rows(cm, class_names))
    reports.write_csv(params.paths.class_iou, [{"class": name, "iou": iou} for name, iou in scores["iou"].items()])
    reports.write_csv(params.paths.image_iou, [{"index": i, "mean_iou": round(iou, 6)} for i, iou in enumerate(image_iou)])


if __name__ == "__main__":
    run_stage(main)
