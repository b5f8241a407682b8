"""Stage scripts, run as processes, stop in one line with exit 1 and touch no output: bad params, a model
for another image size, a diverging run, a user's file where an output goes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from segpipe.config import ModelConfig
from segpipe.model import build_unet, save_model
from segpipe.outputs import MODEL_CARD
from segpipe.prepared import Normalization
from tests.helpers import ROOT, TINY, merged, run_script, script_env, signalled_when_ready, write_tiny_prepared
from tests.test_atomic import EVAL_JSON, EXCEL_EXPORT, SETTINGS

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("stage", "changes", "message"),
    [
        (
            "prepare",
            {"data": {"dataset": "oxford_pets"}},
            "data.dataset (read by prepare) names an unknown TFDS dataset 'oxford_pets' "
            "(did you mean 'oxford_iiit_pet'?)",
        ),
        ("prepare", {"data": {"val_fraction": 1.5}}, "data.val_fraction (read by prepare) must be in (0, 1), got 1.5"),
        ("train", {"train": {"epochs": 0}}, "train.epochs (read by train) must be >= 1, got 0"),
        (
            "evaluate",
            {"model": {"depth": 7}},
            "data.image_size (read by prepare) must be divisible by 2**model.depth = 128, got 64",
        ),
        (
            "visualize",
            {"visualize": {"num_exampels": 2}},
            "visualize.num_exampels (read by visualize) is not a known param (did you mean 'num_examples'?)",
        ),
    ],
)
def test_bad_params_stop_the_stage_before_it_writes(tmp_path, project_params, stage, changes, message):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged(project_params, changes)))
    outputs = {name: tmp_path / path for name, path in project_params["paths"].items()}
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("earlier result")
    result = run_script(f"stages/{stage}.py", tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"ERROR segpipe: {message}"
    assert all(path.read_text() == "earlier result" for path in outputs.values())


@pytest.mark.parametrize("stage", ["check", "evaluate"])
@pytest.mark.parametrize(
    ("name", "path", "content", "described"),
    [
        ("class_iou", "mine.csv", b"my;own\n", "CSV with the columns class,iou"),
        ("confusion", "mydata/excel_export.csv", EXCEL_EXPORT, "CSV with the columns actual,predicted,pixels"),
        (
            "eval_metrics",
            "mydata/settings.json",
            SETTINGS.encode(),
            EVAL_JSON,
        ),
    ],
)
def test_a_stage_refuses_a_users_file_at_its_output_as_a_process_and_leaves_it(
    tmp_path, project_params, stage, name, path, content, described
):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(merged(project_params, {"paths": {name: path}})))
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_bytes(content)
    result = run_script(f"stages/{stage}.py", tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ERROR segpipe: paths.{name} ({path}) exists and was not written by this pipeline (not an output in "
        f"dvc.lock, not a {described}): move it away or choose another path"
    )
    assert (tmp_path / path).read_bytes() == content
    assert not (tmp_path / "data" / "checked.json").exists()


def test_model_for_another_image_size_is_refused_by_evaluate(tmp_path, project_params):
    """Run the evaluate stage against prepared data of 8 px and a model built for 16 px."""
    config = ModelConfig(depth=1, base_filters=2, batch_norm=False, batch_norm_momentum=0.9, dropout=0.0)
    params = merged(project_params, {"paths": {"prepared": "prepared", "model": "m.keras"}})  # inside tmp_path
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    save_model(build_unet(16, 3, config, Normalization(scale=1.0, offset=0.0)), tmp_path / "m.keras", ("a", "b", "c"))
    write_tiny_prepared(tmp_path / "prepared")
    result = run_script("stages/evaluate.py", tmp_path)
    assert result.returncode == 1
    assert (
        "m.keras takes 16x16 images and predicts 3 classes, but the prepared data is 8x8"
        in result.stderr.splitlines()[-1]
    )


def test_a_diverging_run_stops_in_one_line_and_keeps_no_model(tmp_path, tiny_params):
    params = merged(tiny_params, {"train": {"epochs": 3, "learning_rate": 1e30}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    # Random 8×8 examples instead of a prepare run: 22 train examples, 3 batches an epoch as in the tiny pipeline.
    write_tiny_prepared(tmp_path / params["paths"]["prepared"], per_split=22)
    (tmp_path / "models").mkdir()
    with zipfile.ZipFile(tmp_path / "models" / "model.keras", "w") as earlier:  # an earlier run's model
        earlier.writestr("config.json", "{}")
        earlier.writestr("metadata.json", "{}")
        earlier.writestr(MODEL_CARD, "{}")  # the card: what tells the pipeline's own model archive from others
    result = run_script("stages/train.py", tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR segpipe: training diverged in epoch 1 (loss ")
    assert last.endswith("): no model saved; lower train.learning_rate (now 1e+30)")
    assert not (tmp_path / "models" / "model.keras").exists()
    assert not (tmp_path / "models" / ".backup").exists()


def started_epoch_one(out, run, deadline: float = 300) -> None:
    """Wait until the training process `run`, whose output goes to the file `out`, is in its first epoch."""
    end = time.monotonic() + deadline
    while "Epoch 1/" not in out.read_text():
        assert run.poll() is None, f"training ended before its first epoch:\n{out.read_text()[-3000:]}"
        assert time.monotonic() < end
        time.sleep(0.02)


def test_training_stopped_in_its_first_epoch_can_be_rerun(tmp_path, project_params):
    """DVCLive deletes a fresh run's files as it starts: stopped then, it leaves only an empty plots/."""
    params = merged(project_params, TINY)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for script in ("stages/prepare.py", "stages/train.py"):
        assert run_script(script, tmp_path, timeout=300).returncode == 0
    params["train"]["epochs"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with (tmp_path / "out.txt").open("w") as out:  # a file: a full pipe would stall training
        run = subprocess.Popen(
            [sys.executable, str(ROOT / "stages" / "train.py")],
            cwd=tmp_path,
            env=script_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert signalled_when_ready(run, lambda: started_epoch_one(tmp_path / "out.txt", run), signal.SIGTERM) == 143
    assert (tmp_path / "out.txt").read_text().strip().splitlines()[-1] == (
        "ERROR segpipe: interrupted by SIGTERM: training stopped in epoch 1 of 20, before any epoch was saved: "
        "rerunning starts at epoch 1"
    )
    live = tmp_path / "metrics" / "train"
    assert [path.relative_to(live) for path in live.rglob("*")] == [Path("plots")]
    rerun = run_script("stages/train.py", tmp_path, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (tmp_path / "models" / "model.keras").is_file()
