"""DVC stage `train`: fit the U-Net on the prepared shards; save the model, its history and final metrics."""

from pathlib import Path

from segpipe import atomic, reports, tfrecords
from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.model import save_model
from segpipe.training import configure_runtime, train_model


def main() -> None:
    params = load_params()
    configure_runtime(params.train)
    prepared = Path(params.paths.prepared)
    manifest = tfrecords.read_manifest(prepared)
    model, history = train_model(prepared, manifest, params.model, params.train)
    save_model(model, params.paths.model)
    reports.write_history(params.paths.history, history)
    atomic.write_json(params.paths.train_metrics, reports.final_training_metrics(history))


if __name__ == "__main__":
    run_stage(main)
