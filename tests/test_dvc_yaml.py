"""dvc.yaml is honest: each stage depends on exactly the code its script imports, and lists the params
config.py says it reads."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from segpipe.config import STAGE_PARAMS
from tests.helpers import ROOT

PACKAGE = ROOT / "src" / "segpipe"


def segpipe_imports(path: Path) -> set[str]:
    """Modules of the segpipe package that `path` imports directly."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segpipe":
            if node.module == "segpipe":
                found |= {alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists()}
            else:
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("segpipe.")}
    return found


def imported_closure(script: Path) -> set[str]:
    """Every package file the script loads, `__init__.py` included, as repository paths."""
    pending, seen = segpipe_imports(script), set()
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending |= segpipe_imports(PACKAGE / f"{module}.py")
    return {f"src/segpipe/{module}.py" for module in seen | {"__init__"}}


@pytest.mark.parametrize("stage", ["check", "prepare", "train", "evaluate", "visualize", "export"])
def test_stage_lists_exactly_the_package_modules_its_script_imports(stage):
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
    listed = {dep for dep in deps if dep.startswith("src/")}
    assert f"stages/{stage}.py" in deps
    assert listed == imported_closure(ROOT / "stages" / f"{stage}.py")


def test_prepare_reads_one_input_folder_whatever_the_source():
    """One param names the folder prepare reads (images, or TFDS's archives), so no unused folder is hashed."""
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["prepare"]["deps"]
    assert [dep for dep in deps if dep.startswith("${")] == ["${paths.checked}", "${data.input}"]


def test_train_depends_on_its_data_and_the_folder_encoder_weights_must_lie_in():
    """A weights file named by model.encoder_weights is refused outside model.pretrained_dir (config.py), so
    DVC sees every change to the weights train starts from."""
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["deps"]
    assert [dep for dep in deps if dep.startswith("${")] == ["${paths.prepared}", "${model.pretrained_dir}"]


def test_each_stage_lists_the_params_config_says_it_reads():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert {stage: tuple(spec["params"]) for stage, spec in stages.items()} == STAGE_PARAMS


@pytest.mark.parametrize(("plot", "axes"), [("confusion", ("x", "y")), ("class_iou", ("y",))])
def test_the_class_plots_keep_the_rows_class_id_order(plot, axes):
    """evaluate writes the rows in class-id order; the plot's template must not sort the classes by name."""
    spec = next(entry[plot] for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"] if plot in entry)
    template = json.loads((ROOT / ".dvc" / "plots" / f"{spec['template']}.json").read_text())
    encoding = template.get("spec", template)["encoding"]
    assert [encoding[axis]["sort"] for axis in axes] == [None] * len(axes)
