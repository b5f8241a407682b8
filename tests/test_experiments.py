"""DVC's experiment loop on the tiny configuration: what a user tries first, and a sweep."""

from __future__ import annotations

import re

import pytest

from tests.helpers import Repo, tiny_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return tiny_project(tmp_path_factory.mktemp("experiments"))


def test_a_one_epoch_experiment_runs_with_the_default_warm_up_and_no_tensorflow_start_up_lines(repo):
    output = repo.dvc("exp", "run", "-S", "train.epochs=1")  # the project default train.warmup_epochs is 1
    assert set(re.findall(r"Running stage '(\w+)'", output)) == {
        "check",
        "prepare",
        "train",
        "evaluate",
        "visualize",
        "export",
    }
    assert "absl::InitializeLog" not in output and "cudart_stub.cc" not in output  # TensorFlow's start-up lines
    assert (
        "INFO segpipe.training: warm-up capped at 0 epochs (train.epochs - 1, leaving the cosine decay one), " in output
    )
