"""The U-Net and its blocks (model.py): shapes, parameter counts, dtype policies, saving and safe loading."""

from __future__ import annotations

import errno
import json
import zipfile

import keras
import numpy as np
import pytest

from segpipe.config import ModelConfig
from segpipe.errors import DataError, PipelineError
from segpipe.model import ModelCard, build_unet, downsample_block, load_model, model_card, save_model, upsample_block
from segpipe.prepared import Normalization
from segpipe.runner import run_main
from tests.helpers import TINY, params_with

PLAIN = ModelConfig(depth=1, base_filters=2, batch_norm=False, batch_norm_momentum=0.9, dropout=0.0)
UNIT = Normalization(scale=1 / 255, offset=0.0)


def conv(k: int, c_in: int, c_out: int, bias: bool = True) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def test_downsample_block_returns_full_resolution_skip_and_halved_features():
    inputs = keras.Input((16, 16, 3))
    skip, down = downsample_block(inputs, 8, PLAIN)
    assert skip.shape == (None, 16, 16, 8)
    assert down.shape == (None, 8, 8, 8)


def test_upsample_block_doubles_resolution_and_uses_the_skip():
    x, skip = keras.Input((8, 8, 16)), keras.Input((16, 16, 8))
    out = upsample_block(x, skip, 8, PLAIN)
    assert out.shape == (None, 16, 16, 8)


def test_unet_outputs_float32_logits_per_pixel_and_class():
    model = build_unet(32, 5, PLAIN, UNIT)
    logits = model(np.zeros((2, 32, 32, 3), dtype=np.float32))
    assert logits.shape == (2, 32, 32, 5)
    assert logits.dtype == "float32"


def test_parameter_count_of_a_depth_one_unet_matches_hand_count():
    # encoder 3->2->2, bottleneck 2->4->4, transpose 4->2 (2x2), decoder (2+2)->2->2, head 2->3 (1x1)
    expected = (
        conv(3, 3, 2)
        + conv(3, 2, 2)
        + conv(3, 2, 4)
        + conv(3, 4, 4)
        + conv(2, 4, 2)
        + conv(3, 4, 2)
        + conv(3, 2, 2)
        + conv(1, 2, 3)
    )
    assert build_unet(16, 3, PLAIN, UNIT).count_params() == expected == 473


def test_batch_norm_replaces_conv_biases_with_four_values_per_channel():
    with_bn = ModelConfig(depth=1, base_filters=2, batch_norm=True, batch_norm_momentum=0.9, dropout=0.0)
    # The six 3x3 convolutions (2+2+4+4+2+2 channels) lose a bias and gain gamma, beta, mean, variance.
    channels = 2 + 2 + 4 + 4 + 2 + 2
    assert build_unet(16, 3, with_bn, UNIT).count_params() == 473 - channels + 4 * channels


def test_reference_notebook_unet_has_31_million_parameters():
    reference = ModelConfig(depth=4, base_filters=64, batch_norm=False, batch_norm_momentum=0.99, dropout=0.3)
    assert build_unet(128, 3, reference, UNIT).count_params() == pytest.approx(31.0e6, rel=0.01)


def test_saved_model_reloads_with_identical_predictions_and_bytes(tmp_path):
    model = build_unet(16, 3, PLAIN, UNIT)
    images = np.random.default_rng(0).uniform(0, 255, size=(1, 16, 16, 3)).astype(np.float32)
    save_model(model, tmp_path / "a.keras", NAMES)
    save_model(model, tmp_path / "b.keras", NAMES)
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.keras") as archive:
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
    reloaded = load_model(tmp_path / "a.keras")
    np.testing.assert_allclose(reloaded(images), model(images), rtol=1e-6)


NAMES = ("pet", "background", "border")


def test_a_saved_model_carries_its_class_names_and_input_size(tmp_path):
    save_model(build_unet(16, 3, PLAIN, UNIT), tmp_path / "m.keras", NAMES)
    assert model_card(tmp_path / "m.keras") == ModelCard(class_names=NAMES, image_size=16)
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert json.loads(archive.read("segpipe.json"))["input"] == "uint8 RGB images (0-255), N x 16 x 16 x 3"


def test_a_model_saved_without_a_card_has_none(tmp_path):
    build_unet(16, 3, PLAIN, UNIT).save(tmp_path / "plain.keras")
    assert model_card(tmp_path / "plain.keras") is None


def test_class_names_must_match_the_model_outputs(tmp_path):
    with pytest.raises(ValueError, match="^2 class names for a model of 3 classes$"):
        save_model(build_unet(16, 3, PLAIN, UNIT), tmp_path / "m.keras", ("a", "b"))
    assert not (tmp_path / "m.keras").exists()


def test_loading_a_missing_model_names_the_file(tmp_path):
    with pytest.raises(DataError) as error:
        load_model(tmp_path / "missing.keras")
    assert str(error.value) == (
        f"{tmp_path / 'missing.keras'} not found: `dvc repro` trains it, `dvc pull` fetches the trained one from "
        "the project's DVC remote"
    )


def test_a_bfloat16_unet_computes_in_bfloat16_with_float32_weights_and_logits(tiny_config):
    model = build_unet(16, 3, tiny_config.model, UNIT, "mixed_bfloat16")
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convolutions[:-1]} == {"bfloat16"}
    assert convolutions[-1].name == "logits" and convolutions[-1].compute_dtype == "float32"
    assert {weight.dtype for weight in model.weights} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was


def test_model_with_a_python_lambda_is_refused(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match=r"lambda\.keras: refused, it holds Python code"):
        load_model(tmp_path / "lambda.keras")


def test_a_folder_named_like_a_model_is_one_line(tmp_path):
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(PipelineError) as error:
        load_model(tmp_path / "model.keras")
    assert str(error.value).startswith(f"{tmp_path / 'model.keras'}: not a loadable Keras model (")


def test_a_full_disk_while_keras_saves_the_model_keeps_the_earlier_model(tmp_path, monkeypatch, caplog):
    target = tmp_path / "model.keras"
    target.write_bytes(b"the earlier model")
    model = build_unet(8, 3, params_with(TINY).model, Normalization(scale=1 / 255, offset=0.0))

    def full_disk(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(keras.Model, "save", full_disk)
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: save_model(model, target, ("a", "b", "c")))
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage().endswith("No space left on device")
    assert target.read_bytes() == b"the earlier model"
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]
