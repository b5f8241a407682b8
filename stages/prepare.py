"""DVC stage `prepare`: read the source (`data.*`), resize, write TFRecord shards and a manifest."""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

from segpipe.config import load_params
from segpipe.outputs import refuse_unowned_outputs
from segpipe.preparation import prepare_dataset
from segpipe.runner import run_main


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths, "prepare")
    prepare_dataset(params.data, params.paths.prepared)


if __name__ == "__main__":
    run_main(main)
