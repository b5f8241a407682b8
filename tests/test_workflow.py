"""The CI workflow: lint, test, report; least privilege; pinned actions; no injection from branch names."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.helpers import ROOT

WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "report.yml").read_text())
JOBS = WORKFLOW["jobs"]
STEPS = [(name, step) for name, job in JOBS.items() for step in job["steps"]]
STEPS_OF = {name: [(name, step) for step in job["steps"]] for name, job in JOBS.items()}


def test_runs_on_pull_request_never_pull_request_target():
    triggers = WORKFLOW[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and "pull_request_target" not in triggers


def test_lint_then_test_then_report():
    assert JOBS["test"]["needs"] == "lint" and JOBS["report"]["needs"] == "test"
    assert any(step.get("run") == "make lint" for step in JOBS["lint"]["steps"])
    assert any("make test" in step.get("run", "") for step in JOBS["test"]["steps"])


def test_lints_and_runs_the_fast_tests_on_every_supported_python_each_on_its_own_interpreter():
    lint = JOBS["lint"]
    assert lint["strategy"]["matrix"]["python-version"] == ["3.11", "3.12", "3.13"]
    assert lint["strategy"]["fail-fast"] is False
    setup_python = next(step for step in lint["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup_python["with"]["python-version"] == "${{ matrix.python-version }}"
    lint_step = next(step for step in lint["steps"] if step.get("run") == "make lint")
    assert lint_step["env"]["PYTHON"] == f"${{{{ steps.{setup_python['id']}.outputs.python-path }}}}"
    assert [step["run"] for step in lint["steps"] if "run" in step] == ["make lint", "make test-fast"]


def test_runs_the_full_suite_and_the_report_on_one_python_the_committed_runs():
    for name in ("test", "report"):
        setup_python = next(
            step for _, step in STEPS_OF[name] if step.get("uses", "").startswith("actions/setup-python@")
        )
        assert "strategy" not in JOBS[name]
        assert setup_python["with"]["python-version"] == "3.11"
        first_make = next(step for _, step in STEPS_OF[name] if "make " in step.get("run", ""))
        assert first_make["env"]["PYTHON"] == "${{ steps.python.outputs.python-path }}"


def test_reads_by_default_and_writes_only_in_the_comment_job_of_each_event():
    assert WORKFLOW["permissions"] == {"contents": "read"}
    writers = {name: job["permissions"] for name, job in JOBS.items() if "permissions" in job}
    assert writers == {
        "comment-on-pull-request": {"contents": "read", "pull-requests": "write"},
        "comment-on-commit": {"contents": "write"},
    }
    assert "github.event_name == 'pull_request'" in JOBS["comment-on-pull-request"]["if"]
    assert JOBS["comment-on-commit"]["if"] == "${{ github.event_name == 'push' }}"


def test_third_party_actions_are_pinned_by_full_commit_sha_with_the_tag_in_a_comment():
    text = (ROOT / ".github" / "workflows" / "report.yml").read_text()
    uses = re.findall(r"uses: (\S+)@(\S+)(.*)", text)
    assert uses
    for action, ref, comment in uses:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), action
        assert re.search(r"# v\d", comment), action


def test_checkouts_do_not_keep_the_token_and_the_report_gets_full_history():
    checkouts = [(name, step) for name, step in STEPS if step.get("uses", "").startswith("actions/checkout@")]
    assert {name for name, _ in checkouts} == {"lint", "test", "report"}
    assert all(step["with"]["persist-credentials"] is False for _, step in checkouts)
    assert dict(checkouts)["report"]["with"]["fetch-depth"] == 0


def test_no_expression_is_expanded_inside_a_run_script():
    for name, step in STEPS:
        assert "${{" not in step.get("run", ""), (name, step.get("name"))


def test_remote_secrets_reach_only_pushes_and_same_repository_pull_requests():
    for _, step in STEPS:
        if any("secrets.AWS" in value for value in step.get("env", {}).values()):
            guard = step["if"]
            assert "github.event_name == 'push'" in guard
            assert "||" not in guard or "github.event.pull_request.head.repo.full_name == github.repository" in guard


def test_images_are_published_only_for_a_public_repository_unless_opted_in():
    for name in ("comment-on-pull-request", "comment-on-commit"):
        assert JOBS[name]["env"]["PUBLISH"] == (
            "${{ (!github.event.repository.private || vars.CML_PUBLISH_PRIVATE == 'true') && 'true' || 'false' }}"
        )


def test_pull_requests_get_one_comment_updated_on_every_push():
    run = next(step["run"] for step in JOBS["comment-on-pull-request"]["steps"] if "run" in step)
    assert "cml comment update" in run and "cml comment create" not in run


def test_a_hostile_base_reaches_the_report_command_as_data_not_shell():
    dry_run = subprocess.run(
        ["make", "-n", "report", "BASE=main;id"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    report_line = next(line for line in dry_run.splitlines() if "segpipe report" in line)
    assert report_line.endswith('report --base "$BASE" --out report')
