"""The export stage's work: the Keras model → a TensorFlow SavedModel, a LiteRT flatbuffer and an ONNX model.

All three take uint8 RGB images (N×S×S×3, 0–255) and return float32 class probabilities (N×S×S×C), so
a server or a phone needs neither our normalization nor a softmax. `model_info.json` beside them
names the classes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import keras
import tensorflow as tf
from tensorflow.core.protobuf import fingerprint_pb2

from segpipe import atomic
from segpipe.config import TfliteQuantization
from segpipe.outputs import MODEL_INFO

log = logging.getLogger(__name__)

SAVED_MODEL = "saved_model"
LITERT = "model.tflite"
ONNX = "model.onnx"
ONNX_OPSET = 17  # supported by every ONNX Runtime since 1.11 (2022)
LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


def _no_optimization(converter: tf.lite.TFLiteConverter) -> None:
    pass


def _float16_weights(converter: tf.lite.TFLiteConverter) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _int8_weights(converter: tf.lite.TFLiteConverter) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # without a dataset: weights only, int8


QUANTIZATIONS: dict[TfliteQuantization, Callable[[tf.lite.TFLiteConverter], None]] = {
    "none": _no_optimization,
    "float16": _float16_weights,
    "dynamic_range": _int8_weights,
}


def export_model(
    model: keras.Model, class_names: tuple[str, ...], out_dir: Path, quantization: TfliteQuantization
) -> None:
    """Write `out_dir/saved_model/`, `out_dir/model.tflite`, `out_dir/model.onnx` and `out_dir/model_info.json`,
    atomically."""
    serving = serving_model(model)
    _, size, _, _ = model.input_shape
    with atomic.atomic_dir(out_dir, MODEL_INFO) as tmp:
        write_saved_model(serving, tmp / SAVED_MODEL)
        (tmp / LITERT).write_bytes(litert_flatbuffer(serving, quantization))
        (tmp / ONNX).write_bytes(onnx_model(serving))
        info = {
            "class_names": list(class_names),
            "input": f"uint8 RGB images, N x {size} x {size} x 3, values 0-255",
            "output": f"float32 class probabilities, N x {size} x {size} x {len(class_names)}",
            "tflite_quantization": quantization,
        }
        atomic.write_json(tmp / MODEL_INFO, info)
    log.info("wrote %s: %s/, %s, %s, %s", out_dir, SAVED_MODEL, LITERT, ONNX, MODEL_INFO)


def serving_model(model: keras.Model) -> keras.Model:
    """`model` taking uint8 images and returning class probabilities instead of logits."""
    _, size, _, _ = model.input_shape
    images = keras.Input((size, size, 3), dtype="uint8", name="images")
    probabilities = keras.layers.Softmax(name="probabilities")(model(keras.ops.cast(images, "float32")))
    return keras.Model(images, probabilities, name="serving")


def litert_flatbuffer(serving: keras.Model, quantization: TfliteQuantization) -> bytes:
    # From the Keras model: converting our SavedModel folder instead keeps the weights as
    # uninitialized resource variables (the LiteRT model then returns NaN).
    converter = tf.lite.TFLiteConverter.from_keras_model(serving)
    QUANTIZATIONS[quantization](converter)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the traced signature
        return converter.convert()


def onnx_model(serving: keras.Model) -> bytes:
    """The serving model as ONNX (input `images`, output `probabilities`), through tf2onnx."""
    _, size, _, _ = serving.input_shape
    spec = (tf.TensorSpec((None, size, size, 3), tf.uint8, name="images"),)
    with contextlib.redirect_stdout(io.StringIO()):
        proto, _ = _tf2onnx_convert().from_keras(serving, input_signature=spec, opset=ONNX_OPSET)
    return proto.SerializeToString()


def _tf2onnx_convert() -> ModuleType:
    """tf2onnx.convert, imported here because only export needs it (it patches numpy aliases and logs at
    import). Its import sets TF_CPP_MIN_LOG_LEVEL=3, which would hide TensorFlow's errors from the rest of this
    process and from every process it starts: the value from before is put back."""
    before = os.environ.get(LOG_LEVEL)
    try:
        from tf2onnx import convert
    finally:
        if before is None:
            os.environ.pop(LOG_LEVEL, None)
        else:
            os.environ[LOG_LEVEL] = before
    return convert


class _Serving(tf.Module):
    """The serving model with a `serving_default` signature, its weights tracked in model order.

    Saved with `tf.saved_model.save` rather than Keras's `model.export`, whose variables come out in
    a different order on every run (different bytes, so DVC would see a change where there is none).
    """

    def __init__(self, serving: keras.Model):
        super().__init__()
        _, size, _, _ = serving.input_shape
        self.model = serving
        self.ordered_weights = list(serving.weights)
        self.serve = tf.function(
            self._probabilities, input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")]
        )

    def _probabilities(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": self.model(images, training=False)}


def write_saved_model(serving: keras.Model, path: Path) -> None:
    """A SavedModel whose `serving_default` signature maps uint8 images to class probabilities."""
    module = _Serving(serving)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    _with_content_uuid(path / "fingerprint.pb")


def _with_content_uuid(fingerprint_path: Path) -> None:
    """Replace the fingerprint's random `uuid` by one derived from the content hashes it holds,
    so that equal models give equal bytes (TensorFlow only reads the uuid for telemetry)."""
    fingerprint = fingerprint_pb2.FingerprintDef.FromString(fingerprint_path.read_bytes())
    content = f"{fingerprint.saved_model_checksum}:{fingerprint.checkpoint_hash}".encode()
    fingerprint.uuid = str(int.from_bytes(hashlib.sha256(content).digest()[:16], "big"))
    fingerprint_path.write_bytes(fingerprint.SerializeToString(deterministic=True))
