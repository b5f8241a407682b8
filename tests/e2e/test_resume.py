"""A training run killed midway resumes from its last complete epoch and ends exactly where an
uninterrupted run ends: same weights, same metrics, curves without gaps or repeats."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import ROOT, TINY, merged, run_script, script_env, start_script

pytestmark = pytest.mark.slow
EPOCHS = 4


def stage(directory, name: str):
    result = run_script(f"stages/{name}.py", directory)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def prepared_project(tmp_path_factory, tiny_prepared):
    """A project folder with tiny params (several epochs) and its prepared data."""
    root = tmp_path_factory.mktemp("resume")
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    params["train"].update(epochs=EPOCHS, warmup_epochs=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(tiny_prepared, root / params["paths"]["prepared"])
    return root


def copy_project(source, target):
    shutil.copytree(source, target)
    return target


def with_memory_budget(project, megabytes: float):
    """`project` with `train.in_memory_max_mb` set (its 22 train examples take 0.09 MB)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["in_memory_max_mb"] = megabytes
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return project


@pytest.mark.parametrize("megabytes", [2048, 0.02], ids=["in-memory", "streamed"])
def test_killed_run_resumes_to_the_same_weights_and_metrics(prepared_project, tmp_path, megabytes):
    straight = with_memory_budget(copy_project(prepared_project, tmp_path / "straight"), megabytes)
    log = stage(straight, "train").stderr
    assert ("streaming the train split" in log) == (megabytes < 1)

    resumed = with_memory_budget(copy_project(prepared_project, tmp_path / "resumed"), megabytes)
    stamp = resumed / "models" / ".backup" / "run.json"  # written last: an epoch's backup is complete
    run = start_script("stages/train.py", resumed)
    wait_for_backed_up_epoch(run, stamp, 2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (resumed / "models" / "model.keras").exists()

    log = stage(resumed, "train").stderr
    assert "resuming from the backup" in log
    assert (resumed / "models/model.keras").read_bytes() == (straight / "models/model.keras").read_bytes()
    live = "metrics/train/metrics.json"
    assert json.loads((resumed / live).read_text()) == json.loads((straight / live).read_text())
    for split in ("train", "eval"):
        tsv = f"metrics/train/plots/metrics/{split}/mean_iou.tsv"
        assert (resumed / tsv).read_text() == (straight / tsv).read_text()
    assert not (resumed / "models" / ".backup").exists()


def wait_for_backed_up_epoch(run, stamp, epoch: int) -> None:
    """Wait until the training process `run` has committed `epoch` to its backup (its stamp is written last)."""
    deadline = time.monotonic() + 300
    while not (stamp.exists() and json.loads(stamp.read_text() or "{}").get("epoch", 0) >= epoch):
        assert run.poll() is None, f"training ended before epoch {epoch}'s backup appeared"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_ctrl_c_stops_training_in_one_line_and_a_rerun_resumes_after_the_saved_epoch(prepared_project, tmp_path):
    project = copy_project(prepared_project, tmp_path / "interrupted")
    stamp = project / "models" / ".backup" / "run.json"
    with (project / "stderr.txt").open("w") as stderr:  # a file: a full pipe would stall training
        run = subprocess.Popen(
            [sys.executable, str(ROOT / "stages/train.py")], cwd=project, env=script_env(), stderr=stderr
        )
    try:
        wait_for_backed_up_epoch(run, stamp, 1)
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=60) == 130
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    log = (project / "stderr.txt").read_text()
    saved = json.loads(stamp.read_text())["epoch"]
    stopped = re.search(r"training stopped in epoch (\d+) of 4", log)
    assert stopped and int(stopped[1]) in (saved, saved + 1)  # in the epoch after the saved one, or its stamp
    assert log.strip().splitlines()[-1] == (
        f"ERROR segpipe: interrupted by Ctrl-C: training stopped in epoch {stopped[1]} of {EPOCHS}; "
        f"rerunning resumes after epoch {saved}, the last one saved (in models/.backup)"
    )
    assert "Traceback" not in log
    assert not (project / "models" / "model.keras").exists()
    assert f"resuming from the backup in models/.backup after epoch {saved}" in stage(project, "train").stderr
    assert (project / "models" / "model.keras").is_file()


def test_a_killed_fine_tuning_run_resumes_in_its_phase_to_the_same_weights(prepared_project, tmp_path):
    # The encoder is frozen for epochs 1-2: a run killed after either phase began resumes in the right one.
    def fine_tuning(project):
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["model"].update(encoder="mobilenet_v2")
        params["train"].update(freeze_encoder_epochs=2)
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        return project

    straight = fine_tuning(copy_project(prepared_project, tmp_path / "straight"))
    assert "epoch 3: encoder trained from now on" in stage(straight, "train").stderr

    resumed = fine_tuning(copy_project(prepared_project, tmp_path / "resumed"))
    run = start_script("stages/train.py", resumed)
    wait_for_backed_up_epoch(run, resumed / "models" / ".backup" / "run.json", 2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    log = stage(resumed, "train").stderr
    assert "resuming from the backup" in log
    assert (resumed / "models/model.keras").read_bytes() == (straight / "models/model.keras").read_bytes()
