"""DVC stage `export`: the trained model as a TensorFlow SavedModel, a LiteRT flatbuffer and ONNX, for serving."""

from segpipe.quiet import filter_tensorflow_noise

filter_tensorflow_noise()  # first: TensorFlow writes its start-up lines while it loads (quiet.py)

from pathlib import Path

from segpipe.config import load_params
from segpipe.errors import DataError
from segpipe.export import export_model
from segpipe.model import load_model, model_card
from segpipe.outputs import refuse_unowned_outputs
from segpipe.runner import run_main


def main() -> None:
    params = load_params()
    refuse_unowned_outputs(params.paths, "export")
    model = load_model(params.paths.model)
    card = model_card(params.paths.model)
    if card is None:
        raise DataError(f"{params.paths.model} carries no class names (saved before models did): re-run train")
    export_model(model, card.class_names, Path(params.paths.export), params.export.tflite_quantization)


if __name__ == "__main__":
    run_main(main)
