"""DVC stage `train`: fit the U-Net on the prepared shards and save it; DVCLive logs every epoch.

A run killed midway resumes from its last complete epoch (backup in `paths.backup`).
"""

import logging
from pathlib import Path

from segpipe.config import load_params
from segpipe.model import save_model
from segpipe.prepared import open_prepared
from segpipe.runner import run_main
from segpipe.training import TrainingDiverged, configure_runtime, train_model

log = logging.getLogger("segpipe.train")


def main() -> None:
    params = load_params()
    configure_runtime(params.train)
    prepared = open_prepared(params.paths.prepared)
    live, backup = Path(params.paths.live), Path(params.paths.backup)
    try:
        model, _ = train_model(prepared, params.model, params.train, live_dir=live, backup_dir=backup)
    except TrainingDiverged:
        Path(params.paths.model).unlink(missing_ok=True)  # an earlier run's model must not be scored as this one's
        raise
    save_model(model, params.paths.model)
    log.info("saved the model to %s", params.paths.model)


if __name__ == "__main__":
    run_main(main)
