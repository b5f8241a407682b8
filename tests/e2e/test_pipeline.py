"""The DVC pipeline end to end, in a temporary git repository, on the tiny configuration: a copy of the
session's first run (conftest.py), and one retrained commit beside it on a branch.

Which stages ran is read from `dvc repro`'s own output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from segpipe.inference import open_predictor
from segpipe.prepared import open_prepared
from tests.helpers import ROOT, Repo, script_env

pytestmark = pytest.mark.slow
STAGES = {"check", "prepare", "train", "evaluate", "visualize", "export"}


@pytest.fixture(scope="module")
def repo(first_run, tmp_path_factory) -> Repo:
    return first_run.repo.copy(tmp_path_factory.mktemp("pipeline") / "repo")


@pytest.fixture(scope="module")
def retrained(repo: Repo) -> dict:
    """A second commit, on the branch `retrained`, that trains two epochs at a higher learning rate: the stages
    its `dvc repro` ran, and the test scores before and after. The workspace is back on main afterwards."""
    before = json.loads((repo.root / "metrics/evaluate.json").read_text())
    repo.run("git", "checkout", "-q", "-b", "retrained")
    try:
        repo.set_params({"train": {"epochs": 2, "learning_rate": 0.02}})
        ran = repo.repro()
        repo.commit("two epochs at a higher learning rate")
        after = json.loads((repo.root / "metrics/evaluate.json").read_text())
    finally:
        repo.run("git", "checkout", "-q", "--force", "main")
        repo.dvc("checkout", "--force")
    return {"ran": ran, "before": before, "after": after}


@pytest.fixture
def clean_repo(repo: Repo):
    yield repo
    repo.reset()


def test_full_run_writes_every_output(repo):
    metrics = json.loads((repo.root / "metrics/evaluate.json").read_text())
    assert 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert set(metrics["iou"]) == {"pet", "background", "border"}
    assert metrics["pixels"] == 8 * 32 * 32
    assert (repo.root / "models/model.keras").is_file()
    for png in ("predictions", "worst_predictions", "training_curves"):
        assert (repo.root / f"plots/{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    live = json.loads((repo.root / "metrics/train/metrics.json").read_text())
    assert live["step"] == 0 and {"loss", "pixel_accuracy", "mean_iou"} <= set(live["eval"])
    manifest = json.loads((repo.root / "data/prepared/manifest.json").read_text())
    assert {split: info["examples"] for split, info in manifest["splits"].items()} == {"train": 22, "val": 2, "test": 8}


def test_second_repro_runs_nothing_and_status_is_clean(clean_repo):
    assert clean_repo.repro() == set()
    assert json.loads(clean_repo.dvc("status", "--json")) == {}


def test_forced_prepare_rerun_writes_identical_bytes_and_reruns_nothing_downstream(clean_repo):
    lock = (clean_repo.root / "dvc.lock").read_text()
    clean_repo.dvc("repro", "--force", "prepare")
    assert (clean_repo.root / "dvc.lock").read_text() == lock
    assert clean_repo.repro() == set()


def test_visualize_param_reruns_only_visualize(clean_repo):
    clean_repo.set_params({"visualize": {"num_examples": 3}})
    assert clean_repo.repro() == {"check", "visualize"}


def test_evaluate_param_reruns_only_evaluate(clean_repo):
    clean_repo.set_params({"evaluate": {"batch_size": 4}})
    assert clean_repo.repro() == {"check", "evaluate"}


def test_train_param_reruns_train_and_everything_that_reads_the_model(retrained):
    assert retrained["ran"] == {"check", "train", "evaluate", "visualize", "export"}


def test_evaluate_tta_reruns_evaluate_and_visualize_which_draws_the_same_predictions(clean_repo):
    clean_repo.set_params({"evaluate": {"tta": "flip"}})
    assert clean_repo.repro() == {"check", "evaluate", "visualize"}


def test_export_param_reruns_only_export(clean_repo):
    clean_repo.set_params({"export": {"tflite_quantization": "float16"}})
    assert clean_repo.repro() == {"check", "export"}


def test_image_size_reruns_every_stage(clean_repo):
    clean_repo.set_params({"data": {"image_size": 16}})
    assert clean_repo.repro() == STAGES


def test_metrics_diff_shows_the_change_between_two_commits(repo, retrained):
    diff = json.loads(repo.dvc("metrics", "diff", "main", "retrained", "--json"))
    last_step = diff["metrics/train/metrics.json"]["step"]
    assert (last_step["old"], last_step["new"]) == (0, 1)
    assert "mean_iou" in diff["metrics/evaluate.json"]


def test_plots_show_writes_html_with_curves_confusion_and_images(clean_repo, tmp_path):
    clean_repo.dvc("plots", "show", "-o", str(tmp_path / "out"))
    html = (tmp_path / "out" / "index.html").read_text()
    for title in (
        "Mean IoU by epoch",
        "Pixel accuracy by epoch",
        "Loss by epoch",
        "Test confusion matrix",
        "Test IoU per class",
    ):
        assert title in html
    for png in ("predictions.png", "worst_predictions.png", "training_curves.png"):
        assert png in html


def test_report_leads_with_the_headline_then_params_plots_and_galleries(clean_repo, retrained, tmp_path):
    before, after = retrained["before"], retrained["after"]
    clean_repo.run("git", "checkout", "-q", "retrained")
    clean_repo.dvc("checkout", "--force")
    try:
        clean_repo.run(sys.executable, "-m", "segpipe", "report", "--base", "main", "--out", str(tmp_path / "report"))
        report = (tmp_path / "report" / "report.md").read_text()
        sections = [line for line in report.splitlines() if line.startswith("## ")]
        assert sections == ["## Headline", "## Params", "## Metrics", "## Plots", "## Figures"]
        change = after["mean_iou"] - before["mean_iou"]
        row = f"| mean IoU | {before['mean_iou']:.4f} | {after['mean_iou']:.4f} | {change:+.4f} |"
        assert row in report
        assert "train.learning_rate" in report and "0.002" in report and "0.02" in report
        plots = [line[4:] for line in report.splitlines() if line.startswith("### ")]
        assert plots == [
            "Loss by epoch (train vs validation)",
            "Pixel accuracy by epoch (train vs validation)",
            "Mean IoU by epoch (train vs validation)",
            "Test confusion matrix (share of each true class)",
            "Test IoU per class",
            "plots/training_curves.png",
            "plots/predictions.png",
            "plots/worst_predictions.png",
        ]
        images = sorted((tmp_path / "report" / "images").iterdir())
        assert len(images) == 5 + 3 * 2
        assert all(image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    finally:
        clean_repo.run("git", "checkout", "-q", "--force", "main")


def test_report_against_a_base_without_outputs_says_what_is_new(clean_repo, tmp_path):
    first_commit = clean_repo.run("git", "rev-list", "--max-parents=0", "HEAD").strip()
    clean_repo.run(sys.executable, "-m", "segpipe", "report", "--base", first_commit, "--out", str(tmp_path / "r"))
    report = (tmp_path / "r" / "report.md").read_text()
    assert f"`{first_commit}` has no `metrics/evaluate.json`: the scores are new in this change." in report
    assert "### Test IoU per class (not at" in report
    assert "### plots/predictions.png (new: not at" in report


def test_report_refuses_a_base_that_is_not_a_revision(clean_repo, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "segpipe", "report", "--base", "main;id", "--out", str(tmp_path / "r")],
        cwd=clean_repo.root,
        env=clean_repo.env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == "ERROR segpipe: --base 'main;id' is not a git revision of this repository"
    )


@pytest.mark.parametrize(("name", "tolerance"), [("saved_model", 1e-4), ("model.tflite", 1e-3), ("model.onnx", 1e-4)])
def test_exported_models_match_the_keras_model_on_the_test_split(repo, name, tolerance):
    images, _ = open_prepared(repo.root / "data/prepared").arrays("test")
    expected = open_predictor(repo.root / "models/model.keras").probabilities(images)
    actual = open_predictor(repo.root / "models/export" / name).probabilities(images)
    assert np.abs(actual - expected).max() <= tolerance
    assert (actual.argmax(-1) == expected.argmax(-1)).mean() >= 0.999


@pytest.mark.parametrize(
    ("artifact", "path"),
    [
        ("unet", "models/model.keras"),
        ("unet-savedmodel", "models/export/saved_model"),
        ("unet-litert", "models/export/model.tflite"),
        ("unet-onnx", "models/export/model.onnx"),
    ],
)
def test_a_tagged_model_version_resolves_and_downloads_by_name(clean_repo, tmp_path, artifact, path):
    clean_repo.run("git", "tag", "-a", f"{artifact}@v1.0.0", "-m", "first release")
    try:
        shown = json.loads(
            clean_repo.run(
                sys.executable, "-c", f"import dvc.api, json; print(json.dumps(dvc.api.artifacts_show({artifact!r})))"
            )
        )
        assert shown == {"rev": clean_repo.run("git", "rev-parse", "HEAD").strip(), "path": path}
        clean_repo.dvc("artifacts", "get", str(clean_repo.root), artifact, "-o", str(tmp_path / "got"))
        got, original = tmp_path / "got", clean_repo.root / path
        if original.is_dir():
            assert sorted(p.relative_to(got) for p in got.rglob("*")) == sorted(
                p.relative_to(original) for p in original.rglob("*")
            )
        else:
            assert got.read_bytes() == original.read_bytes()
    finally:
        clean_repo.run("git", "tag", "-d", f"{artifact}@v1.0.0")


def test_plots_page_carries_vega_inline_and_renders_offline_in_a_browser(clean_repo, tmp_path):
    clean_repo.run(sys.executable, "-m", "segpipe", "plots", "--out", str(tmp_path / "page"))
    html = (tmp_path / "page" / "index.html").read_text()
    assert "cdn.jsdelivr.net" not in html and "vegaEmbed" in html
    assert "Test IoU per class" in html and "predictions.png" in html
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser (chromium) to render the page in")
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (tmp_path / "page" / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('class="marks"') >= 5  # one rendered Vega view (canvas) per declared Vega plot


def failed_repro(repo: Repo) -> str:
    """Run `dvc repro`, which must fail; return its output."""
    dvc = str(Path(sys.executable).parent / "dvc")
    result = subprocess.run([dvc, "repro"], cwd=repo.root, env=repo.env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_a_bad_param_under_dvc_repro_stops_in_the_check_stage_before_dvc_deletes_any_output(clean_repo):
    model = (clean_repo.root / "models/model.keras").read_bytes()
    clean_repo.set_params({"train": {"epochs": 0}})
    output = failed_repro(clean_repo)
    assert "ERROR segpipe: train.epochs (read by train) must be >= 1, got 0\n" in output
    assert "failed to reproduce 'check'" in output
    assert (clean_repo.root / "models/model.keras").read_bytes() == model
    clean_repo.run("git", "checkout", "params.yaml")
    assert clean_repo.repro() <= {"check"}  # DVC deleted only check's own constant file: restored, nothing else runs
    assert json.loads(clean_repo.dvc("status", "--json")) == {}


def test_an_output_linked_out_of_the_project_is_refused_before_dvc_deletes_through_the_link(clean_repo, tmp_path):
    (tmp_path / "evaluate.json").write_text("someone else's file")
    (clean_repo.root / "data" / "out_link").symlink_to(tmp_path)
    clean_repo.set_params({"paths": {"eval_metrics": "data/out_link/evaluate.json"}})
    output = failed_repro(clean_repo)
    assert (
        f"ERROR segpipe: paths.eval_metrics (data/out_link/evaluate.json; read by evaluate) leads through a link to "
        f"{tmp_path / 'evaluate.json'}, outside the project or into .git, .dvc, src, stages, tests, benchmarks: "
        "outputs must stay inside it\n"
    ) in output
    assert (tmp_path / "evaluate.json").read_text() == "someone else's file"
    (clean_repo.root / "data" / "out_link").unlink()


def test_a_users_file_at_an_output_path_survives_dvc_repro(clean_repo):
    (clean_repo.root / "notes").mkdir()
    (clean_repo.root / "notes" / "results.json").write_text('{"mine": true}')
    clean_repo.set_params({"paths": {"eval_metrics": "notes/results.json"}})
    output = failed_repro(clean_repo)
    assert (
        "ERROR segpipe: paths.eval_metrics (notes/results.json) exists and was not written by this pipeline (not an "
        "output in dvc.lock, not a JSON file (sorted keys, 2-space indent) with the keys dice,iou,mean_iou,"
        "pixel_accuracy,pixels): move it away or choose another path\n"
    ) in output
    assert (clean_repo.root / "notes" / "results.json").read_text() == '{"mine": true}'
    shutil.rmtree(clean_repo.root / "notes")


def test_the_check_stage_writes_the_same_bytes_every_time(tmp_path, project_params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params))
    written = []
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(ROOT / "stages" / "check.py")], cwd=tmp_path, env=script_env(), check=True, timeout=120
        )
        written.append((tmp_path / "data" / "checked.json").read_bytes())
    assert written[0] == written[1]
    assert json.loads(written[0]) == {"params": "valid"}
