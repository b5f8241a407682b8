"""A markdown report of what a change did to the pipeline: params and metrics against a base
revision, and the figures side by side. CI posts it on pull requests; `make report` writes it locally.

    python -m segpipe.report --base main --out report
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from segpipe.config import load_params

FIGURES = ("training_curves", "predictions", "worst")


def build_report(base: str, out_dir: Path, params_path: Path = Path("params.yaml")) -> Path:
    """Write `out_dir/report.md` and its images (workspace against `base`); return the report's path."""
    paths = load_params(params_path).paths
    images = out_dir / "images"
    shutil.rmtree(out_dir, ignore_errors=True)
    images.mkdir(parents=True)
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
    for figure in FIGURES:
        current = Path(getattr(paths, figure))
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
    return subprocess.run(["dvc", *args], check=True, capture_output=True, text=True).stdout.strip()


def _git_show(revision: str, path: Path) -> bytes | None:
    result = subprocess.run(["git", "show", f"{revision}:{path.as_posix()}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def _safe(revision: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in revision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="main", help="revision to compare the workspace with")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its images")
    args = parser.parse_args()
    print(build_report(args.base, args.out))


if __name__ == "__main__":
    main()
