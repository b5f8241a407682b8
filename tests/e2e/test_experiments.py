"""DVC's experiment loop on the tiny configuration: what a user tries first, then a sweep compared and applied
as docs/experiments.md shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import Repo

pytestmark = pytest.mark.slow
SWEEP = {"0.001", "0.002", "0.004"}


@pytest.fixture(scope="module")
def repo(first_run, tmp_path_factory) -> Repo:
    """The tiny project with the one-epoch experiment committed as the baseline (a copy of the session's first run)."""
    return first_run.repo.copy(tmp_path_factory.mktemp("experiments") / "repo")


@pytest.fixture(scope="module")
def one_epoch_run(first_run) -> str:
    """What the first experiment a user tries prints (the project default train.warmup_epochs is 1)."""
    return first_run.output


def test_a_one_epoch_experiment_runs_with_the_default_warm_up(one_epoch_run):
    stages = set(re.findall(r"Running stage '(\w+)'", one_epoch_run))
    assert stages == {"check", "prepare", "train", "evaluate", "visualize", "export"}
    assert (
        "INFO segpipe.optimization: warm-up capped at 0 epochs (train.epochs - 1, leaving the cosine decay one), "
        "not train.warmup_epochs = 1\n"
    ) in one_epoch_run


def test_a_run_prints_no_tensorflow_start_up_lines(one_epoch_run):
    assert "absl::InitializeLog" not in one_epoch_run and "cudart_stub.cc" not in one_epoch_run


def wait_for_the_queue(repo: Repo, timeout: float = 1800) -> str:
    """`dvc queue status` once no experiment is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = repo.dvc("queue", "status")
        if not re.search(r"\b(Queued|Running)\b", status):
            return status
        time.sleep(5)
    raise AssertionError(f"the queue did not finish in {timeout} s:\n{status}")


def test_a_queued_sweep_runs_compares_in_120_columns_and_the_best_applies(repo):
    repo.dvc("exp", "run", "--queue", "-S", "train.learning_rate=0.001,0.002,0.004")
    repo.dvc("queue", "start")
    status = wait_for_the_queue(repo)
    assert status.count("Success") == 3, status

    command = [sys.executable, "-m", "segpipe", "exps"]
    shown = subprocess.run(command, cwd=repo.root, env={**repo.env, "COLUMNS": "120"}, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.splitlines()
    assert max(len(line.rstrip()) for line in table) <= 120
    assert table[1].split() == [
        "Experiment",
        "State",
        "mean_iou",
        "pixel_accuracy",
        "eval.loss",
        "eval.mean_iou",
        "train.learning_rate",
    ]
    rows = [line.split() for line in table if "Success" in line]
    assert {row[-1] for row in rows} == SWEEP
    best = rows[0]
    assert float(best[4]) == max(float(row[4]) for row in rows)  # the best test mean IoU first

    name = best[2].strip("[]")
    repo.dvc("exp", "apply", name)
    params = yaml.safe_load((repo.root / "params.yaml").read_text())
    metrics = json.loads((repo.root / "metrics/evaluate.json").read_text())
    assert str(params["train"]["learning_rate"]) == best[-1]
    assert f"{metrics['mean_iou']:.5g}" == best[4]  # DVC shows 5 significant digits
