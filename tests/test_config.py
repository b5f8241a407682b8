"""params.yaml is validated once, at load, and every error names the key at fault: values, output paths,
dataset versions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segpipe.config import (
    Distribute,
    FolderLayout,
    LossName,
    LrSchedule,
    Precision,
    TfliteQuantization,
    load_params,
    params_from_dict,
)
from segpipe.distribution import STRATEGIES
from segpipe.errors import ConfigError
from segpipe.export import QUANTIZATIONS
from segpipe.losses import LOSSES
from segpipe.optimization import LR_SCHEDULES
from segpipe.precision import PRECISION_POLICIES
from segpipe.sources import LAYOUTS
from segpipe.typed import choices
from tests.helpers import ROOT, merged, params_with


def write(tmp_path, params: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_load_with_their_documented_values():
    params = load_params(ROOT / "params.yaml")
    assert params.data.dataset == "synthetic_pets:1.0.0"
    assert params.data.image_size % 2**params.model.depth == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": {"epochs": 0}}, "train.epochs (read by train) must be >= 1, got 0"),
        ({"train": {"batch_size": 0}}, "train.batch_size (read by train) must be >= 1, got 0"),
        ({"evaluate": {"batch_size": -1}}, "evaluate.batch_size (read by evaluate) must be >= 1, got -1"),
        ({"data": {"val_fraction": 0.0}}, "data.val_fraction (read by prepare) must be in (0, 1), got 0.0"),
        ({"data": {"val_fraction": 1}}, "data.val_fraction (read by prepare) must be in (0, 1), got 1.0"),
        (
            {"data": {"image_size": 100}, "model": {"depth": 3}},
            "data.image_size (read by prepare) must be divisible by 2**model.depth = 8, got 100",
        ),
        (
            {"data": {"dataset": "oxford_iit_pet:4.0.0"}},
            "data.dataset (read by prepare) names an unknown TFDS dataset 'oxford_iit_pet' "
            "(did you mean 'oxford_iiit_pet'?)",
        ),
        ({"train": {"epochs": "ten"}}, "train.epochs (read by train) must be int, got 'ten' (str)"),
        ({"train": {"augment": {"flip": "yes"}}}, "train.augment.flip (read by train) must be bool, got 'yes' (str)"),
        (
            {"train": {"augment": {"min_scale": 0}}},
            "train.augment.min_scale (read by train) must be in (0, 1], got 0.0",
        ),
        (
            {"train": {"lr_schedule": "step"}},
            "train.lr_schedule (read by train) must be one of constant, cosine, got 'step'",
        ),
        ({"train": {"seed": -1}}, "train.seed (read by train) must be >= 0, got -1"),
        ({"data": {"image_size": 100_000}}, "data.image_size (read by prepare) must be <= 4096, got 100000"),
        ({"train": {"batch_size": 10**9}}, "train.batch_size (read by train) must be <= 65536, got 1000000000"),
        ({"train": {"learning_rate": True}}, "train.learning_rate (read by train) must be float, got True (bool)"),
        (
            {"train": {"loss_function": "dice"}},
            "train.loss_function (read by train) must be one of cross_entropy, cross_entropy_dice, got 'dice'",
        ),
        (
            {"evaluate": {"tta": "rotate"}},
            "evaluate.tta (read by evaluate, visualize) must be one of none, flip, got 'rotate'",
        ),
        (
            {"train": {"mixed_precision": "half"}},
            "train.mixed_precision (read by train) must be one of off, float16, bfloat16, auto, got 'half'",
        ),
        ({"train": {"in_memory_max_mb": -1}}, "train.in_memory_max_mb (read by train) must be in [0, 1e9], got -1.0"),
        (
            {"train": {"cluster_timeout": 0}},
            "train.cluster_timeout (read by train) must be in (0, 86400] seconds, got 0.0",
        ),
        (
            {"export": {"tflite_quantization": "int4"}},
            "export.tflite_quantization (read by export) must be one of none, float16, dynamic_range, got 'int4'",
        ),
        (
            {"data": {"folder": {"layout": "coco"}}},
            "data.folder.layout (read by prepare) must be one of oxford, masks, got 'coco'",
        ),
        (
            {"paths": {"worst": "plots/worst.jpg"}},
            "paths.worst (read by visualize) must name a .png file, got 'plots/worst.jpg'",
        ),
        (
            {"data": {"folder": {"class_names": [f"c{index}" for index in range(257)]}}},
            "data.folder.class_names (read by prepare) must name at most 256 classes (masks hold 8-bit class ids), "
            "got 257",
        ),
        (
            {"model": {"encoder": "resnet50"}},
            "model.encoder (read by train) must be one of unet, mobilenet_v2, efficientnet_v2_b0, resnet50_v2, vgg16, "
            "got 'resnet50'",
        ),
        (
            {"model": {"encoder_weights": "imagenet"}},
            "model.encoder_weights (read by train) must be none with model.encoder unet (a from-scratch encoder has "
            "no pretrained weights), got 'imagenet'",
        ),
        (
            {"model": {"encoder": "vgg16", "encoder_weights": "data/vgg16.weights.h5"}},
            "model.encoder_weights (read by train) must be none, imagenet or a weights file inside "
            "model.pretrained_dir (models/pretrained, a DVC dependency of train), got 'data/vgg16.weights.h5'",
        ),
        (
            {"model": {"encoder": "vgg16", "encoder_weights": "models/pretrained/missing.weights.h5"}},
            "model.encoder_weights (read by train) must name an existing Keras weights file (.weights.h5 or .h5), "
            "got 'models/pretrained/missing.weights.h5'",
        ),
        (
            {"model": {"encoder": "vgg16", "encoder_weights": "models/pretrained/README.md"}},
            "model.encoder_weights (read by train) must name an existing Keras weights file (.weights.h5 or .h5), "
            "got 'models/pretrained/README.md'",
        ),
        (
            {"model": {"encoder": "mobilenet_v2", "depth": 6}, "data": {"image_size": 128}},
            "model.depth (read by train) must be <= 5 with model.encoder mobilenet_v2 (its deepest features are at "
            "stride 32), got 6",
        ),
        (
            {"model": {"encoder": "efficientnet_v2_b0"}, "data": {"image_size": 16}},
            "data.image_size (read by prepare) must be >= 32 with model.encoder efficientnet_v2_b0 (the smallest "
            "input keras.applications builds it for), got 16",
        ),
        (
            {"model": {"encoder": "vgg16", "depth": 5}, "data": {"image_size": 48}},
            "data.image_size (read by prepare) must be divisible by 2**model.depth = 32, got 48",
        ),
        (
            {"train": {"freeze_encoder_epochs": 2}},
            "train.freeze_encoder_epochs (read by train) must be 0 with model.encoder unet (only a backbone is "
            "frozen), got 2",
        ),
        (
            {"model": {"encoder": "vgg16"}, "train": {"freeze_encoder_epochs": 41}},
            "train.freeze_encoder_epochs (read by train) must be <= 40, got 41",
        ),
        (
            {"model": {"pretrained_dir": "models/export/weights"}},
            "paths.export (models/export; read by export) contains model.pretrained_dir (models/export/weights): "
            "outputs must not "
            "hold inputs",
        ),
        (
            {"train": {"jit_compile": True, "deterministic": True}},
            "train.jit_compile (read by train) has no effect while train.deterministic is true "
            "(Keras turns XLA off under op determinism): set one of them to false",
        ),
    ],
)
def test_bad_value_is_refused_naming_the_key(tmp_path, project_params, changes, message):
    with pytest.raises(ConfigError) as error:
        load_params(write(tmp_path, merged(project_params, changes)))
    assert str(error.value) == message


def test_unknown_key_is_refused_with_a_suggestion(tmp_path, project_params):
    project_params["train"]["epoch"] = 3
    with pytest.raises(ConfigError) as error:
        load_params(write(tmp_path, project_params))
    assert str(error.value) == "train.epoch (read by train) is not a known param (did you mean 'epochs'?)"


@pytest.mark.parametrize(
    ("section", "old"),
    [(("data",), "manual_dir"), (("data", "folder"), "path")],
)
def test_a_renamed_key_is_refused_with_its_new_name(tmp_path, project_params, section, old):
    mapping = project_params
    for name in section:
        mapping = mapping[name]
    mapping[old] = "data/images"
    with pytest.raises(ConfigError) as error:
        load_params(write(tmp_path, project_params))
    assert (
        str(error.value) == f"{'.'.join(section)}.{old} (read by prepare) is now data.input: rename it in params.yaml"
    )


def test_unknown_section_is_refused(tmp_path, project_params):
    project_params["optimiser"] = {"name": "adam"}
    with pytest.raises(ConfigError, match=r"^optimiser is not a known param$"):
        load_params(write(tmp_path, project_params))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"paths": {"model": "/tmp/model.keras"}},
            "paths.model (read by train, evaluate, visualize, export) must be a relative path inside the project, "
            "outside .git, .dvc, src, stages, tests, benchmarks, got '/tmp/model.keras'",
        ),
        (
            {"paths": {"backup": "data"}},
            "paths.backup (data; read by train) overlaps paths.checked (data/checked.json): outputs must be apart",
        ),
        (
            {"paths": {"checked": "/tmp/checked.json"}},
            "paths.checked (read by check) must be a relative path inside the project, "
            "outside .git, .dvc, src, stages, tests, benchmarks, got '/tmp/checked.json'",
        ),
        ({"visualize": {"dpi": 5}}, "visualize.dpi (read by visualize) must be >= 20, got 5"),
    ],
)
def test_a_refused_key_names_every_stage_that_reads_it(tmp_path, project_params, changes, message):
    with pytest.raises(ConfigError) as error:
        load_params(write(tmp_path, merged(project_params, changes)))
    assert str(error.value) == message


def test_a_weights_file_inside_the_pretrained_folder_is_the_encoders_start(tmp_path, project_params, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "pretrained").mkdir(parents=True)
    (tmp_path / "models" / "pretrained" / "vgg16.weights.h5").write_bytes(b"")
    changes = {"model": {"encoder": "vgg16", "encoder_weights": "models/pretrained/vgg16.weights.h5"}}
    model = load_params(write(tmp_path, merged(project_params, changes))).model
    assert model.weights_file == Path("models/pretrained/vgg16.weights.h5")


def test_a_one_epoch_run_loads_with_the_default_warm_up_and_does_none(tmp_path, project_params):
    params = load_params(write(tmp_path, merged(project_params, {"train": {"epochs": 1}})))
    assert (params.train.warmup_epochs, params.train.warmup) == (1, 0)


def test_warm_up_is_capped_at_one_epoch_less_than_the_run(tmp_path, project_params):
    params = load_params(write(tmp_path, merged(project_params, {"train": {"epochs": 3, "warmup_epochs": 5}})))
    assert params.train.warmup == 2


def test_missing_key_is_named(project_params):
    del project_params["model"]["dropout"]
    with pytest.raises(ConfigError, match=r"^model\.dropout is missing$"):
        params_from_dict(project_params)


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: {epochs: 3\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path} is not valid YAML at line 2, column 1: expected ',' or '}}', but got '<stream end>'"
    )


def test_python_tags_are_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "params.yaml"
    path.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path} is not valid YAML at line 1, column 8: ")
    assert not marker.exists()


def project_text_with(old: str, new: str, tmp_path):
    text = (ROOT / "params.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_numbers_are_read_as_dvc_reads_them(tmp_path):
    path = project_text_with("learning_rate: 0.002", "learning_rate: 2e-3", tmp_path)
    assert load_params(path).train.learning_rate == 0.002


def test_off_is_a_word_not_a_boolean_as_dvc_reads_it(tmp_path):
    path = project_text_with("mixed_precision: auto", "mixed_precision: off", tmp_path)
    assert load_params(path).train.mixed_precision == "off"


def test_yaml_1_1_booleans_are_refused_where_a_boolean_is_expected(tmp_path):
    path = project_text_with("deterministic: true", "deterministic: yes", tmp_path)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == "train.deterministic (read by train) must be bool, got 'yes' (str)"


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    first = text.splitlines().index(next(line for line in text.splitlines() if line.startswith("  epochs:"))) + 1
    path = project_text_with("  epochs:", "  epochs: 3\n  epochs:", tmp_path)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path} is not valid YAML at line {first + 1}, column 3: key 'epochs' appears twice "
        f"(lines {first} and {first + 1})"
    )


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"train:\n  epochs: \xff\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == f"{path} is not UTF-8 text (invalid start byte at byte 17)"


def test_integer_is_accepted_where_a_float_is_expected(project_params):
    project_params["train"]["learning_rate"] = 1
    assert params_from_dict(project_params).train.learning_rate == 1.0


@pytest.mark.parametrize(
    ("registry", "choice"),
    [
        (LOSSES, LossName),
        (LR_SCHEDULES, LrSchedule),
        (STRATEGIES, Distribute),
        (LAYOUTS, FolderLayout),
        (QUANTIZATIONS, TfliteQuantization),
        (PRECISION_POLICIES, Precision),
    ],
    ids=[
        "train.loss_function",
        "train.lr_schedule",
        "train.distribute",
        "data.folder.layout",
        "export.tflite_quantization",
        "train.mixed_precision (auto: test_precision.py)",
    ],
)
def test_every_allowed_choice_has_exactly_one_implementation(registry, choice):
    assert sorted(registry) == sorted(choices(choice))


def validated(changes: dict):
    params = params_with(changes)
    params.validate()
    return params


def refusal(changes: dict) -> str:
    with pytest.raises(ConfigError) as error:
        validated(changes)
    return str(error.value)


def test_an_output_through_a_link_out_of_the_project_is_refused(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "project" / "data" / "out_link").symlink_to(outside)
    monkeypatch.chdir(tmp_path / "project")
    assert refusal({"paths": {"eval_metrics": "data/out_link/evaluate.json"}}) == (
        f"paths.eval_metrics (data/out_link/evaluate.json) leads through a link to {outside / 'evaluate.json'}, "
        "outside the project or into .git, .dvc, src, stages, tests, benchmarks: outputs must stay inside it"
    )


def test_an_output_linked_into_the_code_is_refused(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    (tmp_path / "plots").symlink_to(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    assert refusal({"paths": {"confusion": "plots/confusion.csv"}}).startswith(
        f"paths.confusion (plots/confusion.csv) leads through a link to {tmp_path / 'src' / 'confusion.csv'}, "
    )


@pytest.mark.parametrize(
    ("data", "output", "message"),
    [
        (
            {"input": "data/manual"},
            "data/manual/images.tar.gz",
            "paths.model (data/manual/images.tar.gz) is inside data.input (data/manual)",
        ),
        (
            {"tfds_data_dir": "data/tfds"},
            "data/tfds/model.keras",
            "paths.model (data/tfds/model.keras) is inside data.tfds_data_dir (data/tfds)",
        ),
        (
            {"source": "folder", "input": "data/input"},
            "data/input/cat.keras",
            "paths.model (data/input/cat.keras) is inside data.input (data/input)",
        ),
    ],
)
def test_an_output_inside_an_input_folder_is_refused(data, output, message):
    assert refusal({"data": data, "paths": {"model": output}}) == f"{message}: outputs must not be written among inputs"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"paths": {"model": "models/a\x00b.keras"}}, "paths.model"),
        ({"data": {"input": "data/im\x00ages"}}, "data.input"),
        ({"data": {"tfds_data_dir": "data/\x00"}}, "data.tfds_data_dir"),
    ],
)
def test_a_path_with_a_nul_byte_is_refused_naming_the_key(changes, key):
    assert refusal(changes).startswith(f"{key} holds a NUL byte (")
    assert refusal(changes).endswith("): not a usable path")


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (
            "synthetic_pets:9.9.9",
            "data.dataset asks for version '9.9.9' of synthetic_pets, which has 1.0.0: write synthetic_pets:1.0.0 "
            "(or synthetic_pets for its latest)",
        ),
        (
            "oxford_iiit_pet:1.0.0",
            "data.dataset asks for version '1.0.0' of oxford_iiit_pet, which has 4.0.0: write oxford_iiit_pet:4.0.0 "
            "(or oxford_iiit_pet for its latest)",
        ),
        (
            "synthetic_pets:",
            "data.dataset asks for version '' of synthetic_pets, which has 1.0.0: write synthetic_pets:1.0.0 "
            "(or synthetic_pets for its latest)",
        ),
    ],
)
def test_a_dataset_version_that_does_not_exist_names_those_that_do(dataset, message):
    assert refusal({"data": {"dataset": dataset}}) == message


def test_a_dataset_without_version_takes_its_latest():
    assert validated({"data": {"dataset": "oxford_iiit_pet"}}).data.dataset_version is None


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ({"backup": "data"}, "paths.backup (data) overlaps paths.checked (data/checked.json): outputs must be apart"),
        ({"model": "/tmp/model.keras"}, "paths.model must be a relative path inside the project"),
        ({"export": "../elsewhere"}, "paths.export must be a relative path inside the project"),
        ({"live": "."}, "paths.live must be a relative path inside the project"),
        ({"prepared": "src/prepared"}, "paths.prepared must be a relative path inside the project"),
        ({"confusion": "plots/image_iou.csv"}, "paths.confusion (plots/image_iou.csv) overlaps paths.image_iou"),
        ({"prepared": "data", "checked": "models/checked.json"}, "paths.prepared (data) contains data.input"),
    ],
)
def test_output_paths_that_could_destroy_data_are_refused_at_load(paths, message):
    with pytest.raises(ConfigError) as error:
        params_with({"paths": paths}).validate()
    assert str(error.value).startswith(message)
