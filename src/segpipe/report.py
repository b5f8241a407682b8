"""A markdown report of what a change did to the pipeline: params and metrics against a base
revision, and the figures side by side. CI posts it on pull requests; `segpipe report` writes it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from segpipe.config import load_params
from segpipe.errors import PipelineError


def build_report(base: str, out_dir: Path, params_path: Path = Path("params.yaml")) -> Path:
    """Write `out_dir/report.md` and its images (workspace against `base`); return the report's path."""
    figures = load_params(params_path).paths.figures()
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Pipeline report: workspace against `{base}`",
        "",
        "## Params",
        "",
        _dvc("params", "diff", base, "--md") or "No params changed.",
        "",
        "## Metrics",
        "",
        _dvc("metrics", "diff", base, "--md", "--precision", "4") or "No metrics changed.",
        "",
        "## Figures",
        "",
    ]
    for figure, current in figures.items():
        shutil.copyfile(current, images / f"{figure}.png")
        before = _git_show(base, current)
        if before is None:
            lines += [f"### {figure} (new)", "", f"![{figure}](images/{figure}.png)", ""]
            continue
        (images / f"{figure}-{_safe(base)}.png").write_bytes(before)
        lines += [
            f"### {figure}",
            "",
            f"| `{base}` | workspace |",
            "|---|---|",
            f"| ![{figure} at {base}](images/{figure}-{_safe(base)}.png) | ![{figure}](images/{figure}.png) |",
            "",
        ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def _dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise PipelineError(f"dvc {' '.join(args)} failed: {last}")
    return result.stdout.strip()


def _git_show(revision: str, path: Path) -> bytes | None:
    result = subprocess.run(["git", "show", f"{revision}:{path.as_posix()}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def _safe(revision: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in revision)
