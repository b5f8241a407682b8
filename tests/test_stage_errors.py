"""Stage scripts reject bad params with one line naming the key, exit 1, and touch no output."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import merged, run_script

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
