"""A markdown report of what a change did to the pipeline, against a base revision: the headline
scores, the params that changed, every plot `dvc.yaml` declares (DVC's own Vega-Lite plots,
rendered offline to PNG with vl-convert, base and workspace overlaid as DVC draws them), then the
image galleries side by side. CI posts it on pull requests; `segpipe report` writes it.

Anything the base lacks (a first pull request that adds a metric or a plot, a base from before a
rename) is said in the report, never an error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from segpipe.config import load_params
from segpipe.dvc_command import run_dvc
from segpipe.errors import PipelineError

HEADLINE = (("mean_iou", "mean IoU"), ("pixel_accuracy", "pixel accuracy"))
WORKSPACE = "workspace"


def build_report(base: str, out_dir: Path, params_path: Path = Path("params.yaml")) -> Path:
    """Write `out_dir/report.md` and `out_dir/images/` (workspace against `base`); return the report's path."""
    paths = load_params(params_path).paths
    _check_revision(base)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = [f"# Pipeline report: workspace against `{base}`", ""]
    lines += headline(base, Path(paths.eval_metrics))
    lines += ["## Params", "", _diff_table("params", base) or "No params changed.", ""]
    lines += ["## Metrics", "", _diff_table("metrics", base) or "No metrics changed.", ""]
    lines += plots_section(base, images)
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    return report


def headline(base: str, metrics_path: Path) -> list[str]:
    """Mean IoU and pixel accuracy of the test split, base → workspace, with the change."""
    now = _json_or_none(metrics_path.read_text() if metrics_path.exists() else None) or {}
    before = _json_or_none(_git_show(base, metrics_path))
    lines = ["## Headline", "", f"| test split | `{base}` | workspace | change |", "|---|---|---|---|"]
    for key, label in HEADLINE:
        old, new = (before or {}).get(key), now.get(key)
        change = f"{new - old:+.4f}" if old is not None and new is not None else "–"
        lines.append(f"| {label} | {_number(old)} | {_number(new)} | {change} |")
    if before is None:
        lines += ["", f"`{base}` has no `{metrics_path}`: the scores are new in this change."]
    return [*lines, ""]


def plots_section(base: str, images: Path) -> list[str]:
    """Every plot of `dvc plots diff`: Vega-Lite specs rendered to PNG, then the image galleries."""
    with tempfile.TemporaryDirectory(prefix="plots-") as tmp:
        plots = json.loads(run_dvc("plots", "diff", base, "--json", "-o", tmp) or "{}").get("data", {})
        lines = ["## Plots", ""]
        galleries = ["## Figures", ""]
        for name, entries in plots.items():
            vega = [entry for entry in entries if entry.get("type") == "vega"]
            if vega:
                lines += _vega_plot(name, vega[0], base, images)
            else:
                galleries += _gallery(name, entries, base, images)
    return lines + galleries


def _vega_plot(name: str, entry: dict, base: str, images: Path) -> list[str]:
    import vl_convert  # here: only a report renders plots

    target = images / f"{_safe(name)}.png"
    target.write_bytes(vl_convert.vegalite_to_png(entry["content"], scale=1.5))
    note = "" if base in entry.get("revisions", []) else f" (not at `{base}`: workspace only)"
    return [f"### {_title(entry, name)}{note}", "", f"![{name}](images/{target.name})", ""]


def _gallery(name: str, entries: list[dict], base: str, images: Path) -> list[str]:
    by_revision = {entry["revisions"][0]: Path(entry["url"]) for entry in entries if entry.get("type") == "image"}
    stem = _safe(Path(name).stem)
    copied = {}
    for revision, source in by_revision.items():
        if source.is_file():
            copied[revision] = images / f"{stem}-{_safe(revision)}.png"
            shutil.copyfile(source, copied[revision])
    if WORKSPACE not in copied:
        return [f"### {name}", "", "Not in the workspace.", ""]
    if base not in copied:
        return [f"### {name} (new: not at `{base}`)", "", f"![{name}](images/{copied[WORKSPACE].name})", ""]
    return [
        f"### {name}",
        "",
        f"| `{base}` | workspace |",
        "|---|---|",
        f"| ![{name} at {base}](images/{copied[base].name}) | ![{name}](images/{copied[WORKSPACE].name}) |",
        "",
    ]


def _diff_table(kind: str, base: str) -> str:
    """`dvc params|metrics diff` against `base` as a markdown table, or "" when nothing changed."""
    if not json.loads(run_dvc(kind, "diff", base, "--json") or "{}"):
        return ""
    return run_dvc(kind, "diff", base, "--md", *(["--precision", "4"] if kind == "metrics" else []))


def _title(entry: dict, fallback: str) -> str:
    title = entry.get("content", {}).get("title", fallback)
    return title.get("text", fallback) if isinstance(title, dict) else str(title)


def _check_revision(base: str) -> None:
    result = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], capture_output=True)
    if result.returncode:
        raise PipelineError(f"--base {base!r} is not a git revision of this repository")


def _git_show(revision: str, path: Path) -> str | None:
    result = subprocess.run(["git", "show", f"{revision}:{path.as_posix()}"], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def _json_or_none(text: str | None) -> dict | None:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")
