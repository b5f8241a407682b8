"""The export stage's formats: same predictions as the Keras model, same bytes on every run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from segpipe.config import ModelConfig
from segpipe.errors import DataError
from segpipe.export import LITERT, MODEL_INFO, ONNX, SAVED_MODEL, export_model
from segpipe.inference import class_names_for, open_predictor
from segpipe.model import build_unet, load_model, save_model
from segpipe.prepared import Normalization
from tests.helpers import script_env

pytestmark = pytest.mark.slow
CONFIG = ModelConfig(depth=2, base_filters=8, batch_norm=True, batch_norm_momentum=0.9, dropout=0.0)
CLASSES = ("sky", "road", "car")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained 32 px U-Net saved as .keras and exported, with random test images."""
    root = tmp_path_factory.mktemp("export")
    model = build_unet(32, 3, CONFIG, Normalization(scale=1 / 255, offset=0.0))
    save_model(model, root / "model.keras", CLASSES)
    export_model(model, CLASSES, root / "export", "none")
    images = np.random.default_rng(0).integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    return root, images


def keras_probabilities(root, images):
    return open_predictor(root / "model.keras").probabilities(images)


@pytest.mark.parametrize(("name", "tolerance"), [(SAVED_MODEL, 1e-4), (LITERT, 1e-3), (ONNX, 1e-4)])
def test_exported_probabilities_match_the_keras_model(exported, name, tolerance):
    root, images = exported
    expected = keras_probabilities(root, images)
    predictor = open_predictor(root / "export" / name)
    actual = predictor.probabilities(images)
    assert (predictor.image_size, predictor.num_classes) == (32, 3)
    assert actual.shape == expected.shape == (16, 32, 32, 3)
    assert np.abs(actual - expected).max() <= tolerance
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() >= 0.999


def test_the_litert_model_takes_any_batch_size(exported):
    root, images = exported
    predictor = open_predictor(root / "export" / LITERT)
    one, many = predictor.probabilities(images[:1]), predictor.probabilities(images)
    np.testing.assert_allclose(one[0], many[0], atol=1e-6)


def test_model_info_names_the_classes_for_predict(exported):
    root, _ = exported
    info = json.loads((root / "export" / MODEL_INFO).read_text())
    assert info["class_names"] == list(CLASSES)
    assert class_names_for(open_predictor(root / "export" / LITERT)) == CLASSES


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{broken", "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
        ("[1, 2]", "must be a JSON object whose class_names is a list of strings"),
        ('{"class_names": "pet"}', "must be a JSON object whose class_names is a list of strings"),
    ],
)
def test_a_broken_model_info_beside_a_served_model_is_refused_in_one_line(exported, tmp_path, text, problem):
    root, _ = exported
    (tmp_path / LITERT).write_bytes((root / "export" / LITERT).read_bytes())
    (tmp_path / MODEL_INFO).write_text(text)
    with pytest.raises(DataError) as error:
        class_names_for(open_predictor(tmp_path / LITERT))
    assert str(error.value) == f"{tmp_path / MODEL_INFO}: {problem}; re-export the model (dvc repro export)"


# Run in a fresh interpreter: export the model argv[1] to argv[2] (TF_CPP_MIN_LOG_LEVEL unset first if argv[3] says
# so), then print the level the process has after exporting.
EXPORT_IN_A_NEW_PROCESS = (
    "import os, sys; from pathlib import Path; from segpipe.export import export_model; "
    "from segpipe.model import load_model; "
    "os.environ.pop('TF_CPP_MIN_LOG_LEVEL') if sys.argv[3] == 'unset' else None; "
    "export_model(load_model(sys.argv[1]), ('sky', 'road', 'car'), Path(sys.argv[2]), 'none'); "
    "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL', 'unset'))"
)


@pytest.fixture(scope="module")
def exported_in_new_processes(exported, tmp_path_factory):
    """The model exported again in two fresh processes, one started with TF_CPP_MIN_LOG_LEVEL=1 and one without
    it: for each level, the export folder and the level the process had once it had exported."""
    root, _ = exported
    out = tmp_path_factory.mktemp("exported_in_new_processes")
    runs = {}
    for level in ("1", None):
        folder = out / (level or "unset")
        env = {**script_env(), "TF_CPP_MIN_LOG_LEVEL": level or "2"}
        args = [str(root / "model.keras"), str(folder), level or "unset"]
        command = [sys.executable, "-c", EXPORT_IN_A_NEW_PROCESS, *args]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        runs[level] = (folder, result.stdout.splitlines()[-1])
    return runs


def test_two_exports_in_two_processes_write_the_same_bytes(exported, exported_in_new_processes):
    root, _ = exported
    first, second = (files(folder) for folder, _ in exported_in_new_processes.values())
    assert sorted(first) == sorted(second) == sorted(files(root / "export"))
    assert [name for name in first if first[name] != second[name]] == []


@pytest.mark.parametrize("level", ["1", None])
def test_an_onnx_export_leaves_tensorflows_log_level_as_it_was(exported_in_new_processes, level):
    # tf2onnx sets TF_CPP_MIN_LOG_LEVEL=3 when imported: TensorFlow's errors would vanish from then on.
    _, level_after = exported_in_new_processes[level]
    assert level_after == (level or "unset")


def files(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(("quantization", "largest_share"), [("float16", 0.6), ("dynamic_range", 0.4)])
def test_quantized_litert_models_are_smaller_and_still_agree(exported, tmp_path, quantization, largest_share):
    root, images = exported
    export_model(load_model(root / "model.keras"), CLASSES, tmp_path / quantization, quantization)
    size = (tmp_path / quantization / LITERT).stat().st_size
    assert size <= largest_share * (root / "export" / LITERT).stat().st_size
    actual = open_predictor(tmp_path / quantization / LITERT).probabilities(images)
    assert (actual.argmax(-1) == keras_probabilities(root, images).argmax(-1)).mean() >= 0.95
