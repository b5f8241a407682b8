"""DVC stage `evaluate`: score the model on the whole test split; write metrics and the confusion matrix."""

from pathlib import Path

from segpipe import atomic, reports, tfrecords
from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.evaluation import confusion_on
from segpipe.metrics import confusion_rows, segmentation_scores
from segpipe.model import load_model
from segpipe.training import evaluation_dataset


def main() -> None:
    params = load_params()
    prepared = Path(params.paths.prepared)
    manifest = tfrecords.read_manifest(prepared)
    model = load_model(params.paths.model)
    reports.check_model_fits(model, manifest, params.paths.model)
    class_names = manifest["class_names"]
    test = evaluation_dataset(prepared, manifest, "test", params.evaluate.batch_size)
    cm = confusion_on(model, test, len(class_names))
    atomic.write_json(params.paths.eval_metrics, segmentation_scores(cm, class_names))
    reports.write_csv(params.paths.confusion, confusion_rows(cm, class_names))


if __name__ == "__main__":
    run_stage(main)
