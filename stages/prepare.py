"""DVC stage `prepare`: load `data.dataset` through TFDS, resize, write TFRecord shards and a manifest."""

from segpipe.cli import run_stage
from segpipe.config import load_params
from segpipe.preprocess import prepare_dataset


def main() -> None:
    params = load_params()
    prepare_dataset(params.data, params.paths.prepared)


if __name__ == "__main__":
    run_stage(main)
