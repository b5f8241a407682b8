"""DVC stage `train`: fit the U-Net on the prepared shards and save it; DVCLive logs every epoch.

A run killed midway resumes from its last complete epoch (backup in `paths.backup`).
"""

from pathlib import Path

from segpipe import tfrecords
from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.model import save_model
from segpipe.training import configure_runtime, train_model


def main() -> None:
    params = load_params()
    configure_runtime(params.train)
    prepared = Path(params.paths.prepared)
    manifest = tfrecords.read_manifest(prepared)
    model, _ = train_model(
        prepared, manifest, params.model, params.train, live_dir=Path(params.paths.live), backup_dir=Path(params.paths.backup)
    )
    save_model(model, params.paths.model)


if __name__ == "__main__":
    run_stage(main)
