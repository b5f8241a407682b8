"""Running DVC's command line from the `segpipe` command (report, plots page, experiment table)."""

from __future__ import annotations

import subprocess
import sys

from segpipe.errors import PipelineError


def dvc_command(*args: str) -> list[str]:
    """`dvc ARGS` as the DVC of this interpreter's environment, whether or not it is on PATH."""
    return [sys.executable, "-m", "dvc", *args]


def run_dvc(*args: str) -> str:
    """The output of `dvc ARGS`, or its last error line as a `PipelineError`."""
    result = subprocess.run(dvc_command(*args), capture_output=True, text=True)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"dvc {' '.join(args)} failed: {last}")
    return result.stdout.strip()
