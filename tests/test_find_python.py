"""tools/find-python, the interpreter `make setup` builds .venv with, against fake interpreters on a
PATH of their own (shell scripts that answer its version probe and its `-m venv`; each run takes
milliseconds, so these are in the fast loop)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import ROOT

FINDER = ROOT / "tools" / "find-python"


def fake_python(
    bin_dir: Path, name: str, version: str | None, venv: bool = True, platform: str = "linux-x86_64"
) -> Path:
    """An executable `name` that reports Python `version` on `platform` (sys.platform-machine) and
    creates a venv or fails as a Python without its venv package does; with no version, one that is
    on PATH but does not run (a shim)."""
    path = bin_dir / name
    if version is None:
        body = 'echo "pyenv: $0: command not found" >&2; exit 127'
    else:
        minor = ".".join(version.split(".")[:2])
        make_venv = "exit 0" if venv else 'echo "Error: ensurepip is not available" >&2; exit 1'
        answer = f'if [ "$1" = -c ]; then echo "{minor} {version} {platform} $0"; exit 0; fi'
        body = f'{answer}\nif [ "$1" = -m ]; then {make_venv}; fi'
    path.write_text(f"#!/bin/sh\n{body}\nexit 2\n")
    path.chmod(0o755)
    return path


def find(tmp_path: Path, python: str | None = None, asker: str | None = None) -> subprocess.CompletedProcess:
    """Runs the finder with only the fakes and the two tools it needs (mktemp, rm) on PATH."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("mktemp", "rm"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool))
    env = {"PATH": f"{tmp_path / 'bin'}:{tools}", "TMPDIR": str(tmp_path)}
    if python is not None:
        env["PYTHON"] = python
    if asker is not None:
        env["FIND_PYTHON_FOR"] = asker
    return subprocess.run(["/bin/sh", str(FINDER)], env=env, capture_output=True, text=True, timeout=30)


def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def assert_refused(run: subprocess.CompletedProcess, tried: str) -> None:
    """The finder found none, and said so in its one line, listing `tried`."""
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == (
        "make setup: no usable Python; it needs Python 3.11, 3.12 or 3.13 on Linux x86-64, Linux aarch64 or macOS"
        f" arm64 that can create a virtual environment, or PYTHON=/path/to/python (tried {tried})\n"
    )


def test_the_line_names_the_target_that_asks(tmp_path):
    fake_python(bin_dir(tmp_path), "python3.12", "3.12.4")
    run = find(tmp_path, asker="make lint")
    assert run.stderr == f"make lint: using python3.12 (Python 3.12.4, {tmp_path / 'bin' / 'python3.12'})\n"


def test_takes_the_newest_supported_python_and_says_so(tmp_path):
    fakes = bin_dir(tmp_path)
    for name, version in (("python3.11", "3.11.9"), ("python3.12", "3.12.4"), ("python3.13", "3.13.1")):
        fake_python(fakes, name, version)
    run = find(tmp_path)
    assert run.returncode == 0
    assert run.stdout == f"{fakes / 'python3.13'}\n"
    assert run.stderr == f"make setup: using python3.13 (Python 3.13.1, {fakes / 'python3.13'})\n"


def test_skips_a_python_that_cannot_create_a_venv(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", "3.13.1", venv=False)
    fake_python(fakes, "python3.12", "3.12.4")
    assert find(tmp_path).stdout == f"{fakes / 'python3.12'}\n"


def test_skips_one_on_path_that_does_not_run(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", None)
    fake_python(fakes, "python3.11", "3.11.9")
    assert find(tmp_path).stdout == f"{fakes / 'python3.11'}\n"


def test_takes_python3_when_its_version_is_supported(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3", "3.12.4")
    assert find(tmp_path).stdout == f"{fakes / 'python3'}\n"


def test_skips_python3_of_an_unsupported_version(tmp_path):
    fake_python(bin_dir(tmp_path), "python3", "3.14.0")
    run = find(tmp_path)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.endswith(
        "(tried python3.13: not found; python3.12: not found; python3.11: not found; python3: Python 3.14.0)\n"
    )


def test_python_overrides_the_search(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", "3.13.1")
    fake_python(fakes, "python3.11", "3.11.9")
    run = find(tmp_path, python="python3.11")
    assert run.stdout == f"{fakes / 'python3.11'}\n"
    assert run.stderr == f"make setup: using python3.11 (Python 3.11.9, {fakes / 'python3.11'})\n"


def test_an_unusable_override_is_refused_not_replaced(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", "3.13.1")
    old = fake_python(fakes, "python3.10", "3.10.12")
    run = find(tmp_path, python=str(old))
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr.endswith(f"(tried {old}: Python 3.10.12)\n")


def test_says_in_one_line_that_none_is_usable_and_which_versions_would_do(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", None)
    fake_python(fakes, "python3.12", "3.12.4", venv=False)
    fake_python(fakes, "python3", "3.10.12")
    assert_refused(
        find(tmp_path),
        "python3.13: does not run; python3.12: Python 3.12.4, cannot create a venv; python3.11: not found;"
        " python3: Python 3.10.12",
    )


def test_takes_a_python_of_each_platform_the_locks_serve(tmp_path):
    fakes = bin_dir(tmp_path)
    for platform in ("linux-x86_64", "linux-aarch64", "darwin-arm64"):
        fake_python(fakes, "python3.13", "3.13.1", platform=platform)
        assert find(tmp_path).stdout == f"{fakes / 'python3.13'}\n", platform


def test_skips_a_python_of_a_platform_the_locks_do_not_serve(tmp_path):
    fakes = bin_dir(tmp_path)
    fake_python(fakes, "python3.13", "3.13.1", platform="darwin-x86_64")
    fake_python(fakes, "python3.12", "3.12.4", platform="darwin-arm64")
    assert find(tmp_path).stdout == f"{fakes / 'python3.12'}\n"


def test_refuses_in_one_line_on_a_platform_the_locks_do_not_serve(tmp_path):
    fake_python(bin_dir(tmp_path), "python3.13", "3.13.1", platform="darwin-x86_64")
    assert_refused(
        find(tmp_path),
        "python3.13: Python 3.13.1 on darwin-x86_64, which the locks do not serve; python3.12: not found;"
        " python3.11: not found; python3: not found",
    )


def test_leaves_no_probe_folder_behind(tmp_path):
    fake_python(bin_dir(tmp_path), "python3.12", "3.12.4")
    find(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["bin", "tools"]
