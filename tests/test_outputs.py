"""Where a stage writes (outputs.py): a folder output is replaced only if the pipeline wrote it, and paths.live
only if it is DVCLive's."""

from __future__ import annotations

import pytest

from segpipe.errors import PipelineError
from segpipe.outputs import refuse_foreign_live_dir, refuse_unowned_outputs
from tests.helpers import params_with


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


def test_the_empty_folders_dvclive_leaves_when_stopped_in_the_first_epoch_are_accepted(tmp_path):
    (tmp_path / "metrics" / "train" / "plots").mkdir(parents=True)  # what DVCLive leaves after Ctrl-C in epoch 1
    refuse_foreign_live_dir(tmp_path / "metrics" / "train")


@pytest.mark.parametrize(
    "make",
    [
        lambda live: (live / "plots" / "images" / "mine.txt").write_text("mine"),
        lambda live: (live / "plots" / "link").symlink_to(live.parent / "elsewhere", target_is_directory=True),
    ],
    ids=["a file below empty folders", "a link to a folder"],
)
def test_a_folder_holding_a_file_or_a_link_below_empty_folders_is_refused_as_paths_live(tmp_path, make):
    (tmp_path / "live" / "plots" / "images").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    make(tmp_path / "live")
    with pytest.raises(PipelineError) as error:
        refuse_foreign_live_dir(tmp_path / "live")
    assert str(error.value) == (
        f"paths.live ({tmp_path / 'live'}) exists and is not a DVCLive folder (no metrics.json or plots/metrics/), "
        "and DVCLive deletes files by name in it: move it away or choose another path"
    )


def test_an_unstamped_folder_at_a_folder_output_is_refused_naming_the_param(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "export").mkdir(parents=True)
    (tmp_path / "models" / "export" / "mine.txt").write_text("mine")
    with pytest.raises(PipelineError) as error:
        refuse_unowned_outputs(params_with({}).paths, "export")
    assert str(error.value) == (
        "paths.export (models/export) exists and was not written by this pipeline (it has no model_info.json): "
        "move it away or choose another path"
    )
