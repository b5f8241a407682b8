"""`make lock-check`: proves with pip that each Python version's locks resolve as they are on each
supported platform (tools/lock.py's PLATFORMS), for Pythons and platforms this machine need not
have: `pip install --dry-run --only-binary=:all: --python-version X --platform TAG... --target TMP
--require-hashes -r LOCK...`, which installs nothing, and takes only files whose hashes the locks list.

pip picks wheels by the tags it is given but evaluates environment markers, the locks' and the
packages' own, for the Python that runs it, whatever --python-version and --platform say. So pip is
run here with its marker environment set to the target's (pip's vendored packaging, whose
`default_environment` every marker evaluation calls): then a lock line for macOS counts only on
macOS, and a dependency that a package declares for one platform is asked for only there.

pip takes --python-version only with wheels for everything (`--only-binary=:all:`, no exception),
and two locked packages have none, both pure Python: antlr4-python3-runtime 4.9.3, which DVC needs
through hydra-core and omegaconf (they pin 4.9.*), and promise 2.3, which tensorflow-datasets needs.
So each is first built into a wheel from its locked source, hash-checked, and the locks are
resolved with that wheel's hash in place of the source's.

Usage: python tools/lock_check.py 3.11 3.12 3.13
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from lock import GPU_PLATFORMS, PLATFORMS

ROOT = Path(__file__).resolve().parents[1]
# The packages of the locks that have no wheel: built here, from the hashed source the lock pins.
SOURCE_ONLY = ("antlr4-python3-runtime", "promise")
# What one environment installs together: `make setup` (+ `make setup-s3`), and the GPU variant.
INSTALL_SETS = (("build", "runtime", "dev", "s3"), ("build", "gpu"))
# Each platform with each install set it has: the GPU variant on Linux only.
CHECKS = [
    (platform, groups)
    for platform in PLATFORMS
    for groups in INSTALL_SETS
    if "gpu" not in groups or platform in GPU_PLATFORMS
]
# pip run with the marker environment of the target (JSON, the first argument) instead of its own.
PIP_FOR_TARGET = """
import json, sys
from pip._vendor.packaging import markers
target = {**markers.default_environment(), **json.loads(sys.argv.pop(1))}
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main())
"""


def pin_pattern(name: str) -> re.Pattern[str]:
    """A lock's pin of `name`: `name==version[ ; marker] \\` (group 1) and its `--hash=` lines."""
    return re.compile(rf"^({re.escape(name)}==\S+(?: ;[^\n\\]*)?) \\\n(?: +--hash=sha256:[0-9a-f]+(?: \\\n)?)+", re.M)


def marker_environment(version: str, platform: str) -> dict[str, str]:
    """The values environment markers see on CPython `version` (3.X) on `platform` (sys.platform-machine)."""
    sys_platform, machine = platform.split("-")
    return {
        "python_version": version,
        "python_full_version": f"{version}.0",
        "implementation_version": f"{version}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": sys_platform,
        "platform_system": {"linux": "Linux", "darwin": "Darwin"}[sys_platform],
        "platform_machine": machine,
        "os_name": "posix",
    }


def build_wheels(lock_text: str, folder: Path) -> dict[str, str]:
    """Builds each source-only package from its hash-checked source; its wheel's hash, by package."""
    digests = {}
    for name in SOURCE_ONLY:
        match = pin_pattern(name).search(lock_text)
        if match is None:
            raise SystemExit(f"lock-check: {name} is not pinned with hashes in the lock it was expected in")
        source = folder / f"{name}.txt"
        # Without its marker, which is for the platforms the lock serves, not necessarily this one.
        source.write_text(match.group(0).replace(match.group(1), match.group(1).split(" ;")[0], 1) + "\n")
        wheels = folder / "wheels"
        pip("wheel", "--no-deps", "--require-hashes", "--no-build-isolation", "-r", source, "-w", wheels)
        (wheel,) = wheels.glob(f"{name.replace('-', '_')}-*.whl")
        digests[name] = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return digests


def pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", *map(str, args)], check=True)


def with_wheel_hashes(lock_text: str, digests: dict[str, str]) -> str:
    """The locks with each source-only package's hashes replaced by its built wheel's."""
    for name, digest in digests.items():
        lock_text = pin_pattern(name).sub(f"\\1 \\\\\n    --hash=sha256:{digest}", lock_text)
    return lock_text


def resolves(version: str, platform: str, groups: tuple[str, ...], digests: dict[str, str], folder: Path) -> int:
    """Resolves the locks of `groups` together for Python `version` on `platform`; the number of
    packages pip would install."""
    locks = folder / f"py{version}-{platform}-{'-'.join(groups)}.txt"
    text = "\n".join((ROOT / "requirements" / f"py{version}" / f"{group}.txt").read_text() for group in groups)
    locks.write_text(with_wheel_hashes(text, digests))
    report = folder / "report.json"
    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    subprocess.run(
        [
            sys.executable, "-c", PIP_FOR_TARGET, json.dumps(marker_environment(version, platform)),
            "install", "--quiet", "--dry-run", "--only-binary=:all:", "--python-version", version, *tags,
            "--target", folder / "target", "--require-hashes", "--find-links", folder / "wheels",
            "--report", report, "-r", locks,
        ],
        check=True,
    )  # fmt: skip
    return len(json.loads(report.read_text())["install"])


def main(versions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        digests = build_wheels((ROOT / "requirements" / f"py{versions[0]}" / "runtime.txt").read_text(), folder)
        for version in versions:
            for platform, groups in CHECKS:
                count = resolves(version, platform, groups, digests, folder)
                checked = f"Python {version} on {platform}: {' + '.join(groups)}"
                print(f"{checked} resolves from wheels, {count} packages", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
