"""Backbone encoders: the skip layers named per backbone, their preprocessing inside the model, their
weights (none, a file, imagenet offline), and a model that serves like the from-scratch U-Net."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from segpipe.config import Encoder, ModelConfig
from segpipe.encoders import BACKBONES, ENCODER
from segpipe.errors import ConfigError
from segpipe.export import LITERT, ONNX, SAVED_MODEL, export_model
from segpipe.inference import open_predictor
from segpipe.model import build_unet, load_model, save_model
from segpipe.prepared import Normalization
from segpipe.typed import choices
from tests.helpers import ROOT, TINY, merged, script_env, write_tiny_prepared

BACKBONE_NAMES = [name for name in choices(Encoder) if name != "unet"]
UNIT = Normalization(scale=1 / 255, offset=0.0)
CLASSES = ("sky", "road", "car")
# keras.applications' own preprocessing, which each model must apply inside itself
PREPROCESS_INPUT = {
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "efficientnet_v2_b0": keras.applications.efficientnet_v2.preprocess_input,
    "resnet50_v2": keras.applications.resnet_v2.preprocess_input,
    "vgg16": keras.applications.vgg16.preprocess_input,
}


def backbone_config(encoder: str, depth: int = 5, **changes) -> ModelConfig:
    return ModelConfig(
        depth=depth, base_filters=4, batch_norm=True, batch_norm_momentum=0.9, dropout=0.0, encoder=encoder, **changes
    )


def test_every_encoder_but_unet_has_a_backbone():
    assert sorted(BACKBONES) == sorted(BACKBONE_NAMES)


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("encoder", BACKBONE_NAMES)
def test_each_skip_layer_exists_at_its_stride(encoder, size):
    backbone = BACKBONES[encoder]
    model = backbone.application(include_top=False, weights=None, input_shape=(size, size, 3))
    strides = {stride: size // model.get_layer(name).output.shape[1] for stride, name in backbone.features.items()}
    assert strides == {stride: stride for stride in backbone.features}
    assert set(backbone.features) - {1} == {2, 4, 8, 16, 32}
    assert backbone.features[32] == model.layers[-1].name  # the whole backbone at depth 5


@pytest.mark.parametrize("encoder", BACKBONE_NAMES)
def test_the_model_applies_the_backbones_own_preprocessing_to_0_255_rgb(encoder):
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    inputs = keras.Input((32, 32, 3))
    ours = keras.Model(inputs, BACKBONES[encoder].preprocessing(inputs))(images)
    expected = PREPROCESS_INPUT[encoder](images.copy())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), expected, atol=1e-4)


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_a_backbone_unet_returns_float32_logits_at_full_resolution_for_any_depth(depth):
    model = build_unet(32, 3, backbone_config("mobilenet_v2", depth), UNIT)
    logits = model(np.zeros((2, 32, 32, 3), dtype="float32"))
    assert logits.shape == (2, 32, 32, 3)
    assert logits.dtype == "float32"
    assert {f"stride_{2**level}" for level in range(1, depth + 1)} == set(model.get_layer(ENCODER).output)


def test_the_decoder_has_base_filters_doubled_at_each_level_down():
    model = build_unet(32, 3, backbone_config("vgg16", 3), UNIT)
    transposed = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert transposed == [16, 8, 4]  # at strides 4, 2, 1: base_filters 4 * 2**level


def test_vgg16_joins_its_full_resolution_features_and_others_join_none():
    models = {encoder: build_unet(32, 3, backbone_config(encoder, 2), UNIT) for encoder in ("vgg16", "mobilenet_v2")}
    concatenations = {
        encoder: sum(isinstance(layer, keras.layers.Concatenate) for layer in model.layers)
        for encoder, model in models.items()
    }
    assert concatenations == {"vgg16": 2, "mobilenet_v2": 1}


def test_a_weights_file_of_the_backbone_is_where_the_encoder_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(1)
    trunk = keras.applications.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3))
    (tmp_path / "models" / "pretrained").mkdir(parents=True)
    trunk.save_weights("models/pretrained/vgg16.weights.h5")
    config = backbone_config("vgg16", encoder_weights="models/pretrained/vgg16.weights.h5")
    encoder = build_unet(32, 3, config, UNIT).get_layer(ENCODER)
    assert [w.shape for w in encoder.get_weights()] == [w.shape for w in trunk.get_weights()]
    pairs = zip(encoder.get_weights(), trunk.get_weights(), strict=True)
    assert all(np.array_equal(ours, theirs) for ours, theirs in pairs)
    random_start = build_unet(32, 3, config, UNIT, with_encoder_weights=False).get_layer(ENCODER)
    assert not np.array_equal(random_start.get_weights()[0], trunk.get_weights()[0])


@pytest.mark.slow  # a stage script
@pytest.mark.parametrize(
    ("encoder", "file", "origin"),
    [
        (
            "vgg16",
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
        ),
        (
            "mobilenet_v2",
            "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
        ),
    ],
)
def test_imagenet_weights_offline_stop_train_in_one_line_naming_the_file_and_where_to_put_it(
    tmp_path, project_params, encoder, file, origin
):
    write_tiny_prepared(tmp_path / "data" / "prepared", per_split=2, size=32)
    changes = {"model": {"encoder": encoder, "encoder_weights": "imagenet"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged(project_params, merged(TINY, changes))))
    (tmp_path / "keras").mkdir()
    # no network whatever the machine: every download goes to a proxy that is not there
    env = {**script_env(), "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    command = [sys.executable, str(ROOT / "stages" / "train.py")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"ERROR segpipe: model.encoder_weights imagenet: Keras could not download {file} ([Errno 111] Connection "
        f"refused) and found none in {tmp_path / 'keras' / 'models'}: put that file there (from {origin}{file}, on "
        f"a machine that can reach it), or set model.encoder_weights to a Keras weights file of {encoder} "
        "(include_top=False) inside model.pretrained_dir (models/pretrained), or to none"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models" / "model.keras").exists()


# Run as a process: Keras reads KERAS_HOME once, when it is imported. Keras checks a cached file against the
# published hash, and we cannot hold the real ImageNet file: the check is stubbed, and a file of the right name,
# in Keras's legacy .h5 layout like the real one, holds weights the test knows.
CACHED_IMAGENET = """
import sys, h5py, keras, numpy as np
from keras.src.legacy.saving import legacy_h5_format
from keras.src.utils import file_utils
from segpipe.encoders import ENCODER
from segpipe.model import build_unet
from tests.test_encoders import UNIT, backbone_config
keras.utils.set_random_seed(2)
trunk = keras.applications.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3))
with h5py.File(sys.argv[1], "w") as cached:
    legacy_h5_format.save_weights_to_hdf5_group(cached, trunk)
file_utils.validate_file = lambda *args, **kwargs: True
encoder = build_unet(32, 3, backbone_config("vgg16", encoder_weights="imagenet"), UNIT).get_layer(ENCODER)
pairs = zip(encoder.get_weights(), trunk.get_weights(), strict=True)
print("same weights" if all(np.array_equal(ours, theirs) for ours, theirs in pairs) else "other weights")
"""


@pytest.mark.slow  # a process
def test_imagenet_weights_already_in_keras_cache_are_used_without_a_network(tmp_path):
    cached = tmp_path / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cached.parent.mkdir(parents=True)
    env = {**script_env(), "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    command = [sys.executable, "-c", CACHED_IMAGENET, str(cached)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "same weights"


def test_a_weights_file_of_another_backbone_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "pretrained").mkdir(parents=True)
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(
        "models/pretrained/mobilenet.weights.h5"
    )
    config = backbone_config("vgg16", encoder_weights="models/pretrained/mobilenet.weights.h5")
    with pytest.raises(ConfigError) as error:
        build_unet(32, 3, config, UNIT)
    assert str(error.value) == (
        "model.encoder_weights (models/pretrained/mobilenet.weights.h5) is not a Keras weights file of vgg16 built "
        "without its classifier (include_top=False): A total of 13 objects could not be loaded. Example error "
        "message for object <Conv2D name=block1_conv1, built=True>: Layer 'block1_conv1' expected 2 variables, but "
        "received 1 variables during loading. Expected: ['kernel', 'bias']"
    )


# Depth 2: each backbone's preprocessing, stem and first skips, the parts that differ between backbones (deeper
# blocks repeat the same layer kinds; whole backbones take 1-4 minutes each to export on 2 cores). One backbone in
# the fast loop, 13-21 s each.
@pytest.mark.parametrize(
    "encoder",
    [name if name == "mobilenet_v2" else pytest.param(name, marks=pytest.mark.slow) for name in BACKBONE_NAMES],
)
def test_every_exported_format_of_a_backbone_unet_predicts_as_the_keras_model(tmp_path, encoder):
    model = build_unet(32, 3, backbone_config(encoder, 2), UNIT)
    save_model(model, tmp_path / "model.keras", CLASSES)
    export_model(load_model(tmp_path / "model.keras"), CLASSES, tmp_path / "export", "none")
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    expected = open_predictor(tmp_path / "model.keras").probabilities(images)
    for name, tolerance in ((SAVED_MODEL, 1e-4), (LITERT, 1e-3), (ONNX, 1e-4)):
        actual = open_predictor(tmp_path / "export" / name).probabilities(images)
        assert actual.shape == expected.shape == (4, 32, 32, 3)
        assert np.abs(actual - expected).max() <= tolerance, name
