"""DVC stage `export`: the trained model as a TensorFlow SavedModel and a LiteRT flatbuffer, for serving."""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

from pathlib import Path

from segpipe.config import load_params
from segpipe.export import export_model
from segpipe.model import load_model
from segpipe.outputs import refuse_unowned_outputs
from segpipe.prepared import read_manifest
from segpipe.runner import run_main


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths, "export")
    prepared = read_manifest(params.paths.prepared)  # for the class names; the shards are not read
    model = load_model(params.paths.model, expect=prepared)
    export_model(model, prepared.class_names, Path(params.paths.export), params.export.tflite_quantization)


if __name__ == "__main__":
    run_main(main)
