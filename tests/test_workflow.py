"""The CI workflow runs untrusted pull-request code safely and compares against the right base."""

from __future__ import annotations

import yaml

from tests.helpers import ROOT

WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "report.yml").read_text())


def test_runs_on_pull_request_never_pull_request_target():
    triggers = WORKFLOW[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and "pull_request_target" not in triggers


def test_asks_only_for_the_permissions_a_comment_needs():
    assert WORKFLOW["permissions"] == {"contents": "write", "pull-requests": "write"}


def test_remote_secrets_reach_only_pushes_and_same_repository_pull_requests():
    for step in WORKFLOW["jobs"]["report"]["steps"]:
        secrets = [value for value in step.get("env", {}).values() if "secrets." in value]
        if any("secrets.GITHUB_TOKEN" not in value for value in secrets):
            guard = step["if"]
            assert "github.event_name == 'push'" in guard
            assert "github.event.pull_request.head.repo.full_name == github.repository" in guard or "||" not in guard


def test_no_expression_is_expanded_inside_a_run_script():
    for step in WORKFLOW["jobs"]["report"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def test_checks_out_full_history_and_makes_the_publishing_choice_visible():
    steps = WORKFLOW["jobs"]["report"]["steps"]
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    assert WORKFLOW["jobs"]["report"]["env"]["CML_PUBLISH"] == "--publish"
