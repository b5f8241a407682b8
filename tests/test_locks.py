"""The locks (requirements/py3.X/*.txt) against what they are made from: pyproject.toml's direct
dependencies and supported Pythons, requirements/*.in's tested versions, and the platforms
tools/lock.py resolves them for."""

from __future__ import annotations

import importlib
import re
import sys
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]
REQUIREMENTS = ROOT / "requirements"
VERSIONS = sorted(path.name.removeprefix("py") for path in REQUIREMENTS.glob("py3.*"))
# Each lock and the pyproject.toml requirements that are its direct dependencies.
DIRECT = {
    "build": PYPROJECT["build-system"]["requires"],
    "runtime": PROJECT["dependencies"],
    "dev": EXTRAS["dev"],
    "lint": EXTRAS["lint"],
    "s3": EXTRAS["s3"] + EXTRAS["s3-test"],
    "gpu": PROJECT["dependencies"],
}
LOCKS = [(version, lock) for version in VERSIONS for lock in DIRECT]


def tool(name: str):
    """A module of tools/: scripts, not a package, that import each other from their folder."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.append(str(ROOT / "tools"))
    return importlib.import_module(name)


PLATFORMS = list(tool("lock").PLATFORMS)


def pins(path) -> dict[str, str]:
    """The `name==version` lines of a lock or an .in file, by canonical name."""
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", path.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in found}


def test_every_supported_python_has_locks_and_every_place_names_the_same_versions():
    admitted = SpecifierSet(PROJECT["requires-python"])
    supported = [f"3.{minor}" for minor in range(8, 16) if f"3.{minor}" in admitted]
    finder = re.search(r'^supported="([^"]+)"', (ROOT / "tools" / "find-python").read_text(), re.MULTILINE)
    makefile = re.search(r"^LOCK_PYTHONS := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert supported == ["3.11", "3.12", "3.13"]
    assert VERSIONS == supported
    assert finder.group(1).split() == supported
    assert makefile.group(1).split() == supported
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"


def pins_on(path, version: str, platform: str) -> dict[str, str]:
    """The `name==version` lines of a lock whose marker holds for Python `version` on `platform`."""
    environment = tool("lock_check").marker_environment(version, platform)
    found = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ; ([^\\\n]+))? \\$", path.read_text(), re.MULTILINE)
    return {
        canonicalize_name(name): pinned
        for name, pinned, marker in found
        if not marker or Marker(marker).evaluate(environment)
    }


def test_find_python_takes_a_python_of_the_platforms_the_locks_serve():
    finder = re.search(r'^platforms="([^"]+)"', (ROOT / "tools" / "find-python").read_text(), re.MULTILINE)
    assert finder.group(1).split() == PLATFORMS == ["linux-x86_64", "linux-aarch64", "darwin-arm64"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_the_runtime_lock_pins_every_direct_dependency_on_each_platform(version, platform):
    locked = pins_on(REQUIREMENTS / f"py{version}" / "runtime.txt", version, platform)
    assert {canonicalize_name(Requirement(line).name) for line in DIRECT["runtime"]} <= set(locked)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_gpu_lock_serves_linux_only(version):
    gpu = REQUIREMENTS / f"py{version}" / "gpu.txt"
    assert pins_on(gpu, version, "darwin-arm64") == {}
    assert "nvidia-cudnn-cu12" in pins_on(gpu, version, "linux-aarch64")
    assert "nvidia-cudnn-cu12" in pins_on(gpu, version, "linux-x86_64")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_lock_holds_for_its_python_and_not_for_a_newer_one(version):
    # Its markers leave out the lower bound, the resolution's requires-python (--python-version).
    runtime = REQUIREMENTS / f"py{version}" / "runtime.txt"
    newer = [other for other in [*VERSIONS, "3.14"] if other > version]
    assert len(pins_on(runtime, version, "linux-x86_64")) == 146
    assert {other: pins_on(runtime, other, "linux-x86_64") for other in newer} == dict.fromkeys(newer, {})


def test_lock_check_puts_the_built_wheels_hash_in_place_of_the_sources_keeping_the_marker():
    lock = (
        "promise==2.3 ; sys_platform == 'linux' \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "six==1.17.0 \\\n    --hash=sha256:" + "b" * 64 + " \\\n    --hash=sha256:" + "c" * 64 + "\n"
    )
    assert tool("lock_check").with_wheel_hashes(lock, {"promise": "d" * 64, "six": "e" * 64}) == (
        "promise==2.3 ; sys_platform == 'linux' \\\n    --hash=sha256:" + "d" * 64 + "\n"
        "six==1.17.0 \\\n    --hash=sha256:" + "e" * 64 + "\n"
    )


@pytest.mark.parametrize(("version", "lock"), LOCKS, ids=[f"py{version}-{lock}" for version, lock in LOCKS])
def test_every_direct_dependency_is_pinned_in_the_lock_inside_pyprojects_range(version, lock):
    locked = pins(REQUIREMENTS / f"py{version}" / f"{lock}.txt")
    for requirement in map(Requirement, DIRECT[lock]):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in py{version}/{lock}.txt"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"py{version}/{lock}.txt pins {name}=={locked[name]}, outside pyproject.toml's {requirement}"
        )


@pytest.mark.parametrize(("version", "lock"), LOCKS, ids=[f"py{version}-{lock}" for version, lock in LOCKS])
def test_the_lock_pins_the_tested_versions_of_its_in_file(version, lock):
    tested = pins(REQUIREMENTS / f"{lock}.in")
    locked = pins(REQUIREMENTS / f"py{version}" / f"{lock}.txt")
    assert {name: locked.get(name) for name in tested} == tested, "an .in file changed without `make lock`"


@pytest.mark.parametrize(("version", "lock"), LOCKS, ids=[f"py{version}-{lock}" for version, lock in LOCKS])
def test_every_locked_package_is_pinned_with_hashes(version, lock):
    text = (REQUIREMENTS / f"py{version}" / f"{lock}.txt").read_text()
    entries = re.findall(r"^\S.*$(?:\n {4}--hash=.*$)*", text, re.MULTILINE)
    requirements = [entry for entry in entries if not entry.startswith("#")]
    assert requirements
    for entry in requirements:
        assert re.fullmatch(r"\S+==\S+( ; [^\\\n]+)? \\(\n {4}--hash=sha256:[0-9a-f]{64}( \\)?)+", entry), entry


@pytest.mark.parametrize("version", VERSIONS)
def test_the_lint_lock_pins_the_linters_as_the_dev_lock_does(version):
    lint = pins(REQUIREMENTS / f"py{version}" / "lint.txt")
    dev = pins(REQUIREMENTS / f"py{version}" / "dev.txt")
    assert sorted(lint) == ["ruff", "zizmor"]
    assert {name: dev[name] for name in lint} == lint
