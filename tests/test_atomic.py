"""Outputs written atomically (atomic.py): a full disk or a killed writer leaves the earlier file, leftovers
are swept, and an existing file or folder is replaced only if the pipeline wrote it."""

from __future__ import annotations

import errno
import zipfile

import matplotlib.pyplot as plt
import pytest
import yaml
from PIL import Image

from segpipe import atomic, plotting
from segpipe.errors import PipelineError
from segpipe.runner import run_main


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
