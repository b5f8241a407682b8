"""The Keras workarounds: each private name they use still exists, and an untested Keras is named."""

from __future__ import annotations

import importlib
import inspect
import logging

import keras
import pytest
import tensorflow as tf
from keras.src.applications import efficientnet_v2, mobilenet_v2, resnet, vgg16
from keras.src.utils import file_utils

from segpipe import keras_workarounds
from segpipe.keras_workarounds import layer_dtype_policy, per_replica_loss, recorded_downloads


@pytest.mark.parametrize("name", ["_symbolic_build", "_maybe_symbolic_build"])
def test_the_private_model_methods_build_from_specs_replaces_still_exist(name):
    assert callable(getattr(keras.Model, name, None)), f"keras.Model.{name} is gone: re-check build_from_specs"


def test_the_symbolic_build_still_takes_a_data_batch():
    assert "data_batch" in inspect.signature(keras.Model._symbolic_build).parameters


def test_the_strategy_reduce_it_overrides_still_takes_op_value_and_axis():
    parameters = list(inspect.signature(tf.distribute.MultiWorkerMirroredStrategy.reduce).parameters)
    assert parameters[:4] == ["self", "reduce_op", "value", "axis"]


def test_an_untested_keras_version_is_named_at_import(monkeypatch, caplog):
    monkeypatch.setattr(keras, "__version__", "9.0.0")
    with caplog.at_level(logging.WARNING, logger="segpipe.keras_workarounds"):
        importlib.reload(keras_workarounds)
    assert [record.getMessage() for record in caplog.records] == [
        "Keras 9.0.0 is not a version segpipe was tested with (3.15.1): its Keras workarounds may no longer hold "
        "(src/segpipe/keras_workarounds.py)"
    ]


def test_the_installed_keras_is_a_tested_one():
    assert keras.__version__ in keras_workarounds.TESTED_KERAS


def test_a_batch_loss_is_unchanged_on_one_replica():
    assert float(per_replica_loss(tf.constant(3.0))) == 3.0


def test_the_layer_dtype_policy_is_put_back_even_after_an_error():
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError), layer_dtype_policy("mixed_bfloat16"):
        assert keras.layers.Dense(1).dtype_policy.name == "mixed_bfloat16"
        raise RuntimeError("build failed")
    assert keras.config.dtype_policy().name == before


@pytest.mark.parametrize("module", [efficientnet_v2, mobilenet_v2, resnet, vgg16], ids=lambda module: module.__name__)
def test_the_backbones_still_fetch_their_weights_through_file_utils_get_file(module):
    assert "file_utils.get_file(" in inspect.getsource(module), f"{module.__name__}: re-check recorded_downloads"


def test_a_download_is_recorded_where_keras_keeps_it_and_get_file_is_put_back(tmp_path):
    get_file = file_utils.get_file
    with pytest.raises(Exception, match="URL fetch failure"), recorded_downloads() as wanted:
        file_utils.get_file("x.h5", "http://127.0.0.1:9/x.h5", cache_dir=str(tmp_path), cache_subdir="models")
    # compared as values: another test reloads keras_workarounds, which makes a new Download class
    assert [(download.path, download.origin) for download in wanted] == [
        (tmp_path / "models" / "x.h5", "http://127.0.0.1:9/x.h5")
    ]
    assert file_utils.get_file is get_file
