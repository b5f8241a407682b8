"""What the end-to-end tests share, each made once per session: the whole tiny pipeline run, and the tiny
configuration's prepared data."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from tests.helpers import ROOT, TINY, Repo, merged, run_script, tiny_project


class FirstRun(NamedTuple):
    repo: Repo  # never changed: each test module works in its own copy (Repo.copy)
    output: str  # what the command printed


@pytest.fixture(scope="session")
def first_run(tmp_path_factory) -> FirstRun:
    """The tiny project after the first command docs/experiments.md has a user try, `dvc exp run -S
    train.epochs=1` (every stage runs), committed."""
    repo = tiny_project(tmp_path_factory.mktemp("first_run"))
    output = repo.dvc("exp", "run", "-S", "train.epochs=1")
    repo.commit("tiny pipeline run")
    return FirstRun(repo, output)


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """The folder of prepared data the prepare stage writes with the tiny params (copy it into a project whose
    data params are the tiny ones)."""
    root = tmp_path_factory.mktemp("tiny_prepared")
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_script("stages/prepare.py", root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / params["paths"]["prepared"]
