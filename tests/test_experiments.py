"""`segpipe exps` keeps, of `dvc exp show`'s columns, the params and the headline metrics a sweep is compared by."""

from __future__ import annotations

import json
import re

import yaml

from segpipe.experiments import DROP
from tests.helpers import ROOT, dotted_leaves


def dropped(column: str) -> bool:
    return re.match("|".join(DROP), column) is not None  # as `dvc exp show --drop` matches


def test_every_file_dependency_and_paths_param_is_dropped():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = {dep for stage in stages.values() for dep in stage["deps"] if "$" not in dep}
    paths = dotted_leaves(yaml.safe_load((ROOT / "params.yaml").read_text())["paths"], "paths.")
    assert [column for column in [*deps, *paths, "data/prepared", "models/model.keras"] if not dropped(column)] == []


def test_every_other_param_is_kept():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    names = [name for name in dotted_leaves(params) if not name.startswith("paths.")]
    assert [name for name in names if dropped(name)] == []


def test_of_the_metrics_the_test_and_validation_scores_are_kept():
    metrics = [
        *dotted_leaves(json.loads((ROOT / "metrics/evaluate.json").read_text())),
        *dotted_leaves(json.loads((ROOT / "metrics/train/metrics.json").read_text())),
    ]
    assert [name for name in metrics if not dropped(name)] == [
        "mean_iou",
        "pixel_accuracy",
        "eval.loss",
        "eval.mean_iou",
    ]


def test_the_run_time_and_executor_are_dropped_and_the_state_kept():
    assert [column for column in ("Experiment", "Created", "State", "Executor") if not dropped(column)] == [
        "Experiment",
        "State",
    ]
