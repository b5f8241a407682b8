"""Sharing through a DVC remote: push from one clone, pull into another, experiments included.

A bare git repository stands for the team's git server. The S3 case runs against a real S3 API
server on localhost (moto), started and stopped by the test; it is skipped when the optional S3
extra (`make setup-s3`) is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import Repo

pytestmark = pytest.mark.slow


S3_EXTRA = importlib.util.find_spec("dvc_s3") and importlib.util.find_spec("moto")


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def origin(first_run, tmp_path_factory) -> tuple[Repo, Path]:
    """A clone that ran the tiny pipeline (a copy of the session's first run) and pushed its commits to a bare
    `origin` repository."""
    root = tmp_path_factory.mktemp("remote")
    bare = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = first_run.repo.copy(root / "first")
    repo.run("git", "remote", "add", "origin", str(bare))
    repo.run("git", "push", "-q", "origin", "main")
    return repo, bare


def clone(bare: Path, target: Path, env: dict[str, str] | None = None) -> Repo:
    subprocess.run(["git", "clone", "-q", str(bare), str(target)], check=True)
    repo = Repo(target)
    repo.env.update(env or {})
    return repo


def use_remote(repo: Repo, name: str, url: str, *settings: tuple[str, str]) -> None:
    repo.dvc("remote", "add", "--local", "-f", "-d", name, url)
    for key, value in settings:
        repo.dvc("remote", "modify", "--local", name, key, value)


def assert_pulled_clone_matches(first: Repo, second: Repo) -> None:
    second.dvc("pull")
    assert json.loads(second.dvc("status", "--json")) == {}
    assert second.repro() == set()
    for path in ("models/model.keras", "models/export/model.tflite", "data/prepared/manifest.json"):
        assert (second.root / path).read_bytes() == (first.root / path).read_bytes(), path
    assert second.run("git", "status", "--porcelain") == ""


def test_a_local_folder_remote_carries_everything_to_a_fresh_clone(origin, tmp_path):
    first, bare = origin
    use_remote(first, "shared", str(tmp_path / "storage"))
    first.dvc("push")
    second = clone(bare, tmp_path / "second")
    use_remote(second, "shared", str(tmp_path / "storage"))
    assert_pulled_clone_matches(first, second)


@pytest.mark.skipif(not S3_EXTRA, reason="the S3 extra is not installed (make setup-s3 installs dvc-s3 and moto)")
def test_an_s3_remote_carries_everything_to_a_fresh_clone(origin, tmp_path):
    first, bare = origin
    with s3_server() as endpoint:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, **s3_client_credentials()).create_bucket(Bucket="team")
        settings = (("endpointurl", endpoint),)
        first.env.update(S3_CREDENTIALS)
        try:
            use_remote(first, "s3", "s3://team/dvcstore", *settings)
            first.dvc("push")
            second = clone(bare, tmp_path / "second", S3_CREDENTIALS)
            use_remote(second, "s3", "s3://team/dvcstore", *settings)
            assert_pulled_clone_matches(first, second)
        finally:
            first.dvc("remote", "remove", "--local", "s3")


def test_an_experiment_travels_to_another_clone_with_its_params_and_metrics(origin, tmp_path):
    first, bare = origin
    use_remote(first, "shared", str(tmp_path / "storage"))
    first.dvc("exp", "run", "--temp", "-n", "two-epochs", "-S", "train.epochs=2")
    first.dvc("exp", "push", "origin", "two-epochs")
    second = clone(bare, tmp_path / "second")
    use_remote(second, "shared", str(tmp_path / "storage"))
    assert "two-epochs" not in second.dvc("exp", "list", "--all-commits")
    second.dvc("exp", "pull", "origin", "two-epochs")
    experiment = experiment_named(json.loads(second.dvc("exp", "show", "--json")), "two-epochs")
    data = experiment["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["epochs"] == 2
    assert 0.0 <= data["metrics"]["metrics/evaluate.json"]["data"]["mean_iou"] <= 1.0
    second.dvc("exp", "apply", "two-epochs")
    second.dvc("pull")
    assert json.loads(second.dvc("status", "--json")) == {}


def experiment_named(shown: list[dict], name: str) -> dict:
    """The experiment called `name` in `dvc exp show --json` output (experiments hang off commits)."""
    for commit in shown:
        for group in commit.get("experiments") or []:
            for revision in group.get("revs", []):
                if revision.get("name") == name:
                    return revision
    raise AssertionError(f"no experiment {name!r} in {json.dumps(shown)[:2000]}")


def s3_client_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    }


class s3_server:  # named like a function: it is used as one, in a `with` statement
    """moto's S3 API server on a free localhost port for the duration of a `with` block (at most 60 s to start)."""

    def __enter__(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("moto's S3 server did not start within 60 s") from None
                time.sleep(0.2)

    def __exit__(self, *exc_info) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
