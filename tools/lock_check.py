"""`make lock-check`: proves with pip that each Python version's locks resolve as they are, for
versions this machine need not have: `pip install --dry-run --only-binary=:all: --python-version X
--target TMP --require-hashes -r LOCK...`, which installs nothing.

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

ROOT = Path(__file__).resolve().parents[1]
# The packages of the locks that have no wheel: built here, from the hashed source the lock pins.
SOURCE_ONLY = ("antlr4-python3-runtime", "promise")
# What one environment installs together: `make setup` (+ `make setup-s3`), and the GPU variant.
INSTALL_SETS = (("build", "runtime", "dev", "s3"), ("build", "gpu"))


def pinned_block(lock_text: str, name: str) -> str:
    """The lines that pin `name` in a lock: `name==version \\` and its `--hash=` lines."""
    match = re.search(rf"^{re.escape(name)}==\S+(?: \\\n +--hash=sha256:[0-9a-f]+)+", lock_text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"lock-check: {name} is not pinned with hashes in the lock it was expected in")
    return match.group(0)


def build_wheels(lock_text: str, folder: Path) -> dict[str, str]:
    """Builds each source-only package from its hash-checked source; the wheel lines that replace
    its pin, by package."""
    replacements = {}
    for name in SOURCE_ONLY:
        block = pinned_block(lock_text, name)
        source = folder / f"{name}.txt"
        source.write_text(block + "\n")
        wheels = folder / "wheels"
        pip("wheel", "--no-deps", "--require-hashes", "--no-build-isolation", "-r", source, "-w", wheels)
        (wheel,) = wheels.glob(f"{name.replace('-', '_')}-*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        replacements[block] = f"{block.split()[0]} --hash=sha256:{digest}"
    return replacements


def pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", *map(str, args)], check=True)


def resolves(version: str, groups: tuple[str, ...], replacements: dict[str, str], folder: Path) -> int:
    """Resolves the locks of `groups` together for Python `version`; the number of packages pip
    would install."""
    locks = folder / f"py{version}-{'-'.join(groups)}.txt"
    text = "\n".join((ROOT / "requirements" / f"py{version}" / f"{group}.txt").read_text() for group in groups)
    for block, wheel_line in replacements.items():
        text = text.replace(block, wheel_line)
    locks.write_text(text)
    report = folder / "report.json"
    pip(
        "install", "--dry-run", "--only-binary=:all:", "--python-version", version, "--target", folder / "target",
        "--require-hashes", "--find-links", folder / "wheels", "--report", report, "-r", locks,
    )  # fmt: skip
    return len(json.loads(report.read_text())["install"])


def main(versions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        replacements = build_wheels((ROOT / "requirements" / f"py{versions[0]}" / "runtime.txt").read_text(), folder)
        for version in versions:
            for groups in INSTALL_SETS:
                count = resolves(version, groups, replacements, folder)
                print(f"Python {version}: {' + '.join(groups)} resolves from wheels, {count} packages", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
