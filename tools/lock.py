"""`make lock`: regenerates every lock, requirements/py3.X/*.txt, from requirements/*.in, with the
pinned uv (requirements/dev.in), for each supported Python and every supported platform at once.

Each lock is one universal resolution (`uv pip compile --universal --generate-hashes`) restricted
to that Python version on the platforms of PLATFORMS (uv's `environments`, which uv pip compile
reads only from a project's pyproject.toml: one is written to a temporary folder per version), with
a wheel required for each of them (`required-environments`). Every line carries the environment
marker it holds for and the hashes of all of its version's files, so one lock serves every platform.
A lock that exists is kept where it still fits (uv prefers its versions): delete it to resolve from
scratch. Each is resolved against the locks it installs beside (`-c`), so that they agree.

Usage: python tools/lock.py 3.11 3.12 3.13
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The platforms the locks serve, named as Python names them (sys.platform-platform.machine(),
# tools/find-python's `platforms`), with their pip platform tags: TensorFlow 2.21 has wheels for
# these three and Windows x86-64 only (docs/installing.md says why Windows is not among them). Linux
# needs glibc 2.28 or newer (manylinux_2_28, as the x86-64 locks always did; pip takes each older
# manylinux tag only when named), macOS 14 or newer (the newest floor among the locked wheels).
MANYLINUX = [f"manylinux_2_{minor}" for minor in range(28, 16, -1)] + ["manylinux2014", "manylinux2010", "manylinux1"]
PLATFORMS = {
    "linux-x86_64": [f"{tag}_x86_64" for tag in MANYLINUX],
    "linux-aarch64": [f"{tag}_aarch64" for tag in MANYLINUX],
    "darwin-arm64": ["macosx_14_0_arm64"],
}
# tensorflow[and-cuda]'s CUDA wheels are for Linux only.
GPU_PLATFORMS = ("linux-x86_64", "linux-aarch64")
# Each lock and the locks it is resolved against, in the order they are made.
LOCKS = {
    "build": (),
    "runtime": ("build",),
    "dev": ("build", "runtime"),
    "lint": ("dev",),
    "s3": ("build", "runtime", "dev"),
    "gpu": ("build", "runtime"),
}


def marker(version: str, platform: str) -> str:
    """The environment marker of Python `version` (3.X) on `platform` (sys.platform-machine)."""
    sys_platform, machine = platform.split("-")
    major, minor = map(int, version.split("."))
    return (
        f"python_full_version >= '{version}' and python_full_version < '{major}.{minor + 1}'"
        f" and sys_platform == '{sys_platform}' and platform_machine == '{machine}'"
    )


def uv_settings(version: str, platforms: tuple[str, ...]) -> str:
    """The pyproject.toml whose [tool.uv] restricts a resolution to `version` on `platforms`,
    requiring a wheel for each."""
    markers = "".join(f'  "{marker(version, platform)}",\n' for platform in platforms)
    return f"[tool.uv]\nenvironments = [\n{markers}]\nrequired-environments = [\n{markers}]\n"


def compile_lock(version: str, lock: str, settings: Path) -> None:
    folder = Path("requirements") / f"py{version}"
    constraints = [arg for beside in LOCKS[lock] for arg in ("-c", str(folder / f"{beside}.txt"))]
    subprocess.run(
        [
            Path(sys.executable).parent / "uv", "pip", "compile", "--quiet", "--universal", "--generate-hashes",
            "--python-version", version, "--project", settings, "--custom-compile-command", "make lock",
            f"requirements/{lock}.in", *constraints, "-o", folder / f"{lock}.txt",
        ],
        check=True, cwd=ROOT,
    )  # fmt: skip


def main(versions: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for version in versions:
            (ROOT / "requirements" / f"py{version}").mkdir(exist_ok=True)
            for lock in LOCKS:
                platforms = GPU_PLATFORMS if lock == "gpu" else tuple(PLATFORMS)
                settings = Path(tmp) / f"py{version}-{'-'.join(platforms)}"
                settings.mkdir(exist_ok=True)
                (settings / "pyproject.toml").write_text(uv_settings(version, platforms))
                compile_lock(version, lock, settings)
                print(f"make lock: requirements/py{version}/{lock}.txt for {', '.join(platforms)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
