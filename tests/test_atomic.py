"""Outputs written atomically (atomic.py): a full disk or a killed writer leaves the earlier file, leftovers
are swept, and an existing file or folder is replaced only if the pipeline wrote it."""

from __future__ import annotations

import dataclasses
import errno
import zipfile

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from PIL import Image

from segpipe import atomic, plotting
from segpipe.config import ModelConfig
from segpipe.errors import PipelineError
from segpipe.evaluation import write_image_scores
from segpipe.metrics import class_iou_rows, confusion_rows
from segpipe.model import build_unet, save_model
from segpipe.outputs import CHECKED, FILE_SHAPES
from segpipe.prepared import Normalization
from segpipe.records import ImageScore, Scores
from segpipe.runner import run_main

MODEL = ModelConfig(depth=1, base_filters=2, batch_norm=False, batch_norm_momentum=0.9, dropout=0.0)


def users_png(path):
    Image.new("RGB", (4, 4)).save(path, format="PNG")


def keras_archive_without_card(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")


EXCEL_EXPORT = b"name,age\r\nbob,3\r\n"  # a CSV exactly as Python's csv module writes it, of other columns
SETTINGS = '{\n  "theme": "dark"\n}\n'  # canonical JSON (sorted keys, 2-space indent), of other keys
EVAL_JSON = "JSON file (sorted keys, 2-space indent) with the keys dice,iou,mean_iou,pixel_accuracy,pixels"


@pytest.mark.parametrize(
    ("name", "write", "described"),
    [
        ("eval_metrics", lambda p: p.write_text('{"mine": true}'), EVAL_JSON),
        ("eval_metrics", lambda p: p.write_text(SETTINGS), EVAL_JSON),
        ("checked", lambda p: p.write_text(SETTINGS), "JSON file (sorted keys, 2-space indent) with the keys params"),
        ("confusion", lambda p: p.write_bytes(EXCEL_EXPORT), "CSV with the columns actual,predicted,pixels"),
        ("class_iou", lambda p: p.write_text("a;b\nno quotes here, 'x\n"), "CSV with the columns class,iou"),
        ("class_iou", lambda p: p.write_bytes(b"x\r\n"), "CSV with the columns class,iou"),
        (
            "image_iou",
            lambda p: p.write_bytes(b"actual,predicted,pixels\r\n"),
            "CSV with the columns index,file_name,mean_iou",
        ),
        ("worst", users_png, "PNG stamped Software=segpipe"),
        ("model", keras_archive_without_card, "Keras model archive holding segpipe.json"),
    ],
)
def test_a_users_file_at_a_file_output_is_refused_unless_it_has_that_outputs_shape(
    tmp_path, monkeypatch, name, write, described
):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "mine")
    before = (tmp_path / "mine").read_bytes()
    with pytest.raises(PipelineError) as error:
        atomic.refuse_unowned(f"paths.{name}", tmp_path / "mine", FILE_SHAPES[name])
    assert str(error.value) == (
        f"paths.{name} ({tmp_path / 'mine'}) exists and was not written by this pipeline (not an output in dvc.lock, "
        f"not a {described}): move it away or choose another path"
    )
    assert (tmp_path / "mine").read_bytes() == before


SCORES = Scores(pixel_accuracy=0.5, mean_iou=None, foreground_iou=0.25, iou={"a, b": 1.0}, dice={"a, b": 1.0}, pixels=4)


def test_the_pipelines_own_files_may_be_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic.write_json(tmp_path / "checked.json", CHECKED)
    atomic.write_json(tmp_path / "eval_metrics.json", dataclasses.asdict(SCORES))
    atomic.write_csv(tmp_path / "confusion.csv", confusion_rows(np.eye(2, dtype=np.int64), ["pet, cat", 'say "hi"']))
    atomic.write_csv(tmp_path / "class_iou.csv", class_iou_rows(SCORES))
    write_image_scores(tmp_path / "image_iou.csv", [ImageScore(0, "a, b.png", 0.25)])
    plotting.save_figure(plt.figure(), tmp_path / "worst.png", dpi=20)
    save_model(build_unet(16, 2, MODEL, Normalization(scale=1 / 255, offset=0.0)), tmp_path / "model.keras", ("a", "b"))
    for path in tmp_path.iterdir():
        atomic.refuse_unowned(f"paths.{path.stem}", path, FILE_SHAPES[path.stem])


def test_an_evaluate_json_of_a_version_before_foreground_iou_may_be_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    older = {key: value for key, value in dataclasses.asdict(SCORES).items() if key != "foreground_iou"}
    atomic.write_json(tmp_path / "evaluate.json", older)
    atomic.refuse_unowned("paths.eval_metrics", tmp_path / "evaluate.json", FILE_SHAPES["eval_metrics"])


def test_a_file_dvc_lock_lists_as_an_output_may_be_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "old.png").write_bytes(b"an unstamped figure of an older version")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"visualize": {"outs": [{"path": "plots/old.png"}]}}}))
    atomic.refuse_unowned("paths.worst", tmp_path / "plots" / "old.png", FILE_SHAPES["worst"])


def test_a_folder_where_a_file_output_goes_is_refused(tmp_path):
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(PipelineError) as error:
        atomic.refuse_unowned("paths.model", tmp_path / "model.keras", FILE_SHAPES["model"])
    assert str(error.value) == (
        f"paths.model ({tmp_path / 'model.keras'}) is a folder, not a file this pipeline wrote: choose another path"
    )


def test_full_disk_fails_in_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, caplog):
    """A disk that fills up mid-write (simulated: ENOSPC) leaves the previous output as it was."""
    target = tmp_path / "metrics.json"
    target.write_text("previous result")

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("pathlib.Path.write_text", full_disk)
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: atomic.write_json(target, {"mean_iou": 0.9}))
    monkeypatch.undo()
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage().endswith("No space left on device")
    assert target.read_text() == "previous result"
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_leftovers_of_a_killed_writer_are_swept_when_the_output_is_written_again(tmp_path):
    (tmp_path / ".metrics.json.k2x9.tmp").write_text("half a file")
    (tmp_path / ".model.keras.a1b2.tmp.keras").write_text("half a model")
    (tmp_path / ".prepared.old").mkdir()
    (tmp_path / "unrelated.tmp").write_text("not ours")
    atomic.write_json(tmp_path / "metrics.json", {"a": 1})
    atomic.sweep_leftovers(tmp_path / "model.keras")
    atomic.sweep_leftovers(tmp_path / "prepared")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json", "unrelated.tmp"]


def test_a_folder_not_written_by_the_pipeline_is_never_replaced(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_text("precious")
    with pytest.raises(PipelineError) as error, atomic.atomic_dir(tmp_path / "photos", "manifest.json"):
        pass
    assert str(error.value) == (
        f"{tmp_path / 'photos'} exists and was not written by this pipeline (it has no manifest.json): "
        "move it away or choose another path"
    )
    assert (tmp_path / "photos" / "cat.jpg").read_text() == "precious"
