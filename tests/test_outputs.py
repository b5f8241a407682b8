"""A stage writes only where the pipeline owns the place: outputs stay in the project and out of its
inputs (links resolved), and an existing file or folder is replaced only if the pipeline wrote it."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import matplotlib.pyplot as plt
import pytest
import yaml
from PIL import Image

from segpipe import atomic, plotting
from segpipe.config import params_from_dict
from segpipe.errors import ConfigError, PipelineError
from segpipe.outputs import refuse_foreign_live_dir, refuse_unowned_outputs
from tests.helpers import ROOT, merged, script_env

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def validated(changes: dict):
    params = params_from_dict(merged(PARAMS, changes))
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


def users_png(path):
    Image.new("RGB", (4, 4)).save(path)


def users_keras(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a model")


@pytest.mark.parametrize(
    ("name", "write", "kind"),
    [
        ("evaluate.json", lambda p: p.write_text('{"mine": true}'), "JSON file (sorted keys, 2-space indent)"),
        ("class_iou.csv", lambda p: p.write_text("a;b\nno quotes here, 'x\n"), "CSV file"),
        ("worst.png", users_png, "PNG stamped Software=segpipe"),
        ("model.keras", users_keras, "Keras model archive"),
        ("notes.txt", lambda p: p.write_text("mine"), "file"),
    ],
)
def test_a_users_file_at_a_file_output_is_refused(tmp_path, monkeypatch, name, write, kind):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / name)
    before = (tmp_path / name).read_bytes()
    with pytest.raises(PipelineError) as error:
        atomic.refuse_unowned({"paths.x": tmp_path / name})
    assert str(error.value) == (
        f"paths.x ({tmp_path / name}) exists and was not written by this pipeline (not an output in dvc.lock, "
        f"not a {kind} it writes): move it away or choose another path"
    )
    assert (tmp_path / name).read_bytes() == before


def test_the_pipelines_own_files_may_be_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic.write_json(tmp_path / "a.json", {"b": [1.5, 2], "a": {"c": "d"}})
    atomic.write_csv(tmp_path / "a.csv", [{"class": "pet, cat", "iou": 0.25}, {"class": 'say "hi"', "iou": 1.0}])
    plotting.save_figure(plt.figure(), tmp_path / "a.png", dpi=20)
    atomic.refuse_unowned({f"paths.{p.suffix}": p for p in tmp_path.iterdir()})


def test_a_file_dvc_lock_lists_as_an_output_may_be_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "old.png").write_bytes(b"an unstamped figure of an older version")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"visualize": {"outs": [{"path": "plots/old.png"}]}}}))
    atomic.refuse_unowned({"paths.worst": tmp_path / "plots" / "old.png"})


def test_a_folder_where_a_file_output_goes_is_refused(tmp_path):
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(PipelineError) as error:
        atomic.refuse_unowned({"paths.model": tmp_path / "model.keras"})
    assert str(error.value) == (
        f"paths.model ({tmp_path / 'model.keras'}) is a folder, not a file this pipeline wrote: choose another path"
    )


def test_a_folder_that_is_not_dvclives_is_refused_as_paths_live(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "params.yaml").write_text("mine: 1\n")
    with pytest.raises(PipelineError) as error:
        refuse_foreign_live_dir(tmp_path / "config")
    assert str(error.value) == (
        f"paths.live ({tmp_path / 'config'}) exists and is not a DVCLive folder (no metrics.json or plots/metrics/), "
        "and DVCLive deletes files by name in it: move it away or choose another path"
    )
    assert (tmp_path / "config" / "params.yaml").read_text() == "mine: 1\n"


def test_dvclives_own_folder_and_an_empty_one_are_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "live" / "plots" / "metrics").mkdir(parents=True)
    refuse_foreign_live_dir(tmp_path / "empty")
    refuse_foreign_live_dir(tmp_path / "live")
    refuse_foreign_live_dir(tmp_path / "absent")


def test_an_unstamped_folder_at_a_folder_output_is_refused_naming_the_param(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "export").mkdir(parents=True)
    (tmp_path / "models" / "export" / "mine.txt").write_text("mine")
    with pytest.raises(PipelineError) as error:
        refuse_unowned_outputs(validated({}).paths, "export")
    assert str(error.value) == (
        "paths.export (models/export) exists and was not written by this pipeline (it has no model_info.json): "
        "move it away or choose another path"
    )


@pytest.mark.slow
def test_the_check_stage_refuses_a_users_file_as_a_process_and_leaves_it(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged(PARAMS, {"paths": {"class_iou": "mine.csv"}})))
    (tmp_path / "mine.csv").write_text("my;own\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "check.py")],
        cwd=tmp_path,
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ERROR segpipe: paths.class_iou (mine.csv) exists and was not written by this pipeline (not an output in "
        "dvc.lock, not a CSV file it writes): move it away or choose another path"
    )
    assert (tmp_path / "mine.csv").read_text() == "my;own\n"
    assert not (tmp_path / "data" / "checked.json").exists()


@pytest.mark.slow
def test_the_check_stage_writes_the_same_bytes_every_time(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    written = []
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(ROOT / "stages" / "check.py")], cwd=tmp_path, env=script_env(), check=True, timeout=120
        )
        written.append((tmp_path / "data" / "checked.json").read_bytes())
    assert written[0] == written[1]
    assert json.loads(written[0]) == {"params": "valid"}
