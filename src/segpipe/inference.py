"""A trained model in any of its formats, behind one interface: uint8 RGB images → class probabilities.

Formats: the Keras model train writes (`.keras`), and what the export stage writes from it: a
TensorFlow SavedModel folder, a LiteRT (TFLite) flatbuffer (`.tflite`) and an ONNX model (`.onnx`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segpipe.config import Tta
from segpipe.errors import DataError
from segpipe.model import load_model
from segpipe.outputs import MODEL_INFO


@dataclass(frozen=True)
class Predictor:
    path: Path
    image_size: int
    num_classes: int
    probabilities: Callable[[np.ndarray], np.ndarray]  # uint8 N×S×S×3 → float32 N×S×S×C


def open_predictor(path: str | Path) -> Predictor:
    """The model at `path`: a `.keras` file, a SavedModel folder, a `.tflite` or an `.onnx` file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} not found")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _saved_model(path)
    if path.suffix == ".tflite":
        return _litert(path)
    if path.suffix == ".onnx":
        return _onnx(path)
    if path.suffix == ".keras":
        return _keras(path)
    raise DataError(f"{path}: not a model (expected a .keras, .tflite or .onnx file, or a SavedModel folder)")


def probabilities_with_tta(predictor: Predictor, images: np.ndarray, tta: Tta) -> np.ndarray:
    """Class probabilities N×S×S×C; with `flip`, averaged with those of the mirrored images."""
    probabilities = predictor.probabilities(images)
    if tta == "flip":
        mirrored = predictor.probabilities(np.ascontiguousarray(images[:, :, ::-1]))
        probabilities = (probabilities + mirrored[:, :, ::-1]) / 2.0
    return probabilities


def class_names_for(predictor: Predictor, fallback: tuple[str, ...] | None) -> tuple[str, ...]:
    """The model's class names: from the export's `model_info.json` beside it, else `fallback` if it
    has the right length, else `class_0`, `class_1`, ..."""
    info = predictor.path.parent / MODEL_INFO
    if info.is_file():
        names = _exported_class_names(info)
        if len(names) == predictor.num_classes:
            return names
    if fallback is not None and len(fallback) == predictor.num_classes:
        return fallback
    return tuple(f"class_{index}" for index in range(predictor.num_classes))


def _exported_class_names(info: Path) -> tuple[str, ...]:
    """The `class_names` list of an export's `model_info.json`, refused in one line when it is not one."""
    try:
        raw = json.loads(info.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{info}: not valid JSON ({error}); re-export the model (dvc repro export)") from None
    names = raw.get("class_names") if isinstance(raw, dict) else None
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        raise DataError(
            f"{info}: must be a JSON object whose class_names is a list of strings; re-export the model "
            "(dvc repro export)"
        )
    return tuple(names)


def keras_predictor(model: keras.Model, path: Path) -> Predictor:
    """A loaded Keras model (logits out) as a `Predictor` (probabilities out)."""
    _, size, _, _ = model.input_shape

    @tf.function(reduce_retracing=True)  # one graph instead of eager layer-by-layer calls: ~10x at batch 1
    def softmax(images: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(model(tf.cast(images, tf.float32), training=False), axis=-1)

    def probabilities(images: np.ndarray) -> np.ndarray:
        return softmax(tf.constant(images, tf.uint8)).numpy()

    return Predictor(path, size, model.output_shape[-1], probabilities)


def _keras(path: Path) -> Predictor:
    return keras_predictor(load_model(path), path)


def _saved_model(path: Path) -> Predictor:
    try:
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    except (KeyError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a loadable SavedModel with a serving_default signature ({error})") from None
    (spec,) = serve.structured_input_signature[1].values()
    (output,) = serve.structured_outputs.values()
    if spec.dtype != tf.uint8 or len(spec.shape) != 4:
        raise DataError(f"{path}: its serving signature takes {spec.dtype.name} {spec.shape}, not uint8 N×S×S×3")
    (name,) = serve.structured_input_signature[1]

    def probabilities(images: np.ndarray) -> np.ndarray:
        (result,) = serve(**{name: tf.constant(images, tf.uint8)}).values()
        return result.numpy()

    return Predictor(path, int(spec.shape[1]), int(output.shape[-1]), probabilities)


def _litert(path: Path) -> Predictor:
    from ai_edge_litert.interpreter import Interpreter  # here: only LiteRT models need the runtime

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
    except ValueError as error:
        raise DataError(f"{path}: not a LiteRT flatbuffer ({error})") from None
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    batch = [0]  # the batch size the interpreter's tensors are allocated for

    def probabilities(images: np.ndarray) -> np.ndarray:
        if batch[0] != len(images):
            interpreter.resize_tensor_input(inputs["index"], [len(images), *inputs["shape"][1:]])
            interpreter.allocate_tensors()
            batch[0] = len(images)
        interpreter.set_tensor(inputs["index"], np.ascontiguousarray(images, dtype=np.uint8))
        interpreter.invoke()
        return interpreter.get_tensor(outputs["index"]).copy()

    return Predictor(path, int(inputs["shape"][1]), int(outputs["shape"][-1]), probabilities)


def _onnx(path: Path) -> Predictor:
    import onnxruntime  # here: only ONNX models need the runtime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types, not exported by name
        raise DataError(f"{path}: not a loadable ONNX model ({str(error).splitlines()[0]})") from None
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    if inputs.type != "tensor(uint8)" or len(inputs.shape) != 4:
        raise DataError(f"{path}: its input is {inputs.type} {inputs.shape}, not uint8 N×S×S×3")

    def probabilities(images: np.ndarray) -> np.ndarray:
        return session.run([outputs.name], {inputs.name: np.ascontiguousarray(images, dtype=np.uint8)})[0]

    return Predictor(path, int(inputs.shape[1]), int(outputs.shape[-1]), probabilities)
