"""The `segpipe` command line, for people; DVC runs the stage scripts in `stages/` instead.

segpipe report --base main --out report
"""

from __future__ import annotations

import argparse
from pathlib import Path

from segpipe.runner import run_main


def _report(args: argparse.Namespace) -> None:
    from segpipe.report import build_report

    print(build_report(args.base, args.out, args.params))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="segpipe", description="Use and inspect the segmentation pipeline's results.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    report = commands.add_parser(
        "report",
        help="markdown report of params, metrics and figures against a base revision",
        description="Write OUT/report.md: `dvc params diff` and `dvc metrics diff` against BASE as tables, "
        "and each figure of BASE beside the workspace's.",
    )
    report.add_argument("--base", default="main", help="git revision to compare the workspace with (default: main)")
    report.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its images")
    report.add_argument("--params", type=Path, default=Path("params.yaml"), help="the project's params file")
    report.set_defaults(run=_report)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_main(lambda: args.run(args))
