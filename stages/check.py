"""DVC stage `check`: validate params.yaml and every output location before any other stage runs.

DVC deletes a stage's outputs before it runs the stage's command, so a bad param found by that
command comes too late: the previous model or metrics are already gone. This stage reads every
param, so it runs first whenever one changes (prepare depends on its output), and stops the
pipeline before anything is deleted.
"""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

from segpipe import atomic
from segpipe.config import load_params
from segpipe.outputs import CHECKED, refuse_unowned_outputs
from segpipe.runner import run_main


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths)
    atomic.write_json(params.paths.checked, CHECKED)


if __name__ == "__main__":
    run_main(main)
