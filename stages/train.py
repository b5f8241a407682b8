"""DVC stage `train`: fit the U-Net on the prepared shards and save it; DVCLive logs every epoch.

A run killed midway resumes from its last complete epoch (backup in `paths.backup`).
With a `TF_CONFIG` cluster (docs/scaling.md) every worker runs this script and
trains its share; only the chief writes the model and the logs, the others write nothing.
"""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

import logging
from pathlib import Path

from segpipe.config import load_params
from segpipe.distribution import distribution_strategy, is_chief
from segpipe.divergence import TrainingDiverged
from segpipe.model import save_model
from segpipe.outputs import refuse_unowned_outputs
from segpipe.prepared import open_prepared
from segpipe.runner import run_main
from segpipe.training import configure_runtime, train_model, weights_digest

log = logging.getLogger("segpipe.train")


def main() -> None:
    params = load_params()
    strategy = distribution_strategy(params.train)  # first: a multi-worker one needs TF not yet started
    configure_runtime(params.train)
    prepared = open_prepared(params.paths.prepared)
    chief = is_chief(strategy)
    if chief:
        refuse_unowned_outputs(params.paths, "train")
    live, backup = (Path(params.paths.live), Path(params.paths.backup)) if chief else (None, None)
    try:
        model, _ = train_model(
            prepared, params.model, params.train, live_dir=live, backup_dir=backup, strategy=strategy
        )
    except TrainingDiverged:
        if chief:
            Path(params.paths.model).unlink(missing_ok=True)  # an earlier run's model must not be scored as this one's
        raise
    log.info("final weights sha256 %s", weights_digest(model))  # the same on every worker of a cluster
    if not chief:  # saving reads no variable through a collective: the chief needs no other worker for it
        log.info("not the chief: the model is saved by the chief")
        return
    save_model(model, params.paths.model, prepared.class_names)
    log.info("saved the model to %s", params.paths.model)


if __name__ == "__main__":
    run_main(main)
