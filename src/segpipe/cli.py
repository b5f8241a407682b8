"""The `segpipe` command line, for people; DVC runs the stage scripts in `stages/` instead.

segpipe predict photos/ --out masks/          # a mask per photo, at the photo's size
segpipe report --base main --out report       # params, metrics and figures against main
segpipe exps                                  # the experiments side by side (`make exps`)
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from pathlib import Path
from typing import get_args

from segpipe.config import Tta
from segpipe.quiet import filter_tensorflow_noise
from segpipe.runner import run_main


def _predict(args: argparse.Namespace) -> None:
    from segpipe.inference import class_names_for, open_predictor
    from segpipe.predict import PredictOptions, predict_files

    predictor = open_predictor(_model_path(args))
    options = PredictOptions(
        out_dir=args.out,
        tta=args.tta,
        overlay=args.overlay,
        overlay_opacity=args.overlay_opacity,
        skip_bad=args.skip_bad,
        max_pixels=args.max_pixels,
        batch_size=args.batch_size,
    )
    predict_files(predictor, class_names_for(predictor), args.inputs, args.recursive, options)


def _model_path(args: argparse.Namespace) -> Path:
    """The model to use: `--model`, else the project's `paths.model`."""
    from segpipe.config import load_params
    from segpipe.errors import DataError
    from segpipe.model import HOW_TO_GET_A_MODEL

    if args.model is not None:
        return args.model
    if not args.params.exists():
        raise DataError(f"no --model given and no {args.params} to take paths.model from")
    model = Path(load_params(args.params).paths.model)
    if not model.exists():
        raise DataError(f"{model} (paths.model) not found: {HOW_TO_GET_A_MODEL}; or pass --model PATH")
    return model


def _report(args: argparse.Namespace) -> None:
    from segpipe.report import build_report

    print(build_report(args.base, args.out, args.params))


def _plots(args: argparse.Namespace) -> None:
    from segpipe.plots_page import write_plots_page

    print(write_plots_page(args.revisions, args.out))


def _exps(args: argparse.Namespace) -> None:
    from segpipe.experiments import show_experiments

    if code := show_experiments():
        sys.exit(code)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _opacity(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="segpipe", description="Use and inspect the segmentation pipeline's results.")
    root.add_argument("--version", action="version", version=f"segpipe {version('segpipe')}")
    root.add_argument("--params", type=Path, default=Path("params.yaml"), help="the project's params file")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser(
        "predict",
        help="segment image files with a trained model",
        description="Write OUT/NAME.png for each image: its class ids (0, 1, ...) as a palette PNG coloured "
        "like the plots, at the image's own (EXIF-upright) size; OUT/predictions.csv lists each file's size "
        "and share of pixels per class. Nothing in OUT changes unless every image succeeds.",
    )
    predict.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders of images")
    predict.add_argument("--out", type=Path, required=True, help="output folder (not inside an input folder)")
    predict.add_argument(
        "--model", type=Path, help="a .keras, .tflite or .onnx file or a SavedModel folder (default: paths.model)"
    )
    predict.add_argument("--recursive", action="store_true", help="also read images in subfolders of INPUT folders")
    predict.add_argument(
        "--overlay",
        action="store_true",
        help="also write OUT/NAME.overlay.jpg: the photo with every class but `background` tinted its colour",
    )
    predict.add_argument(
        "--overlay-opacity",
        type=_opacity,
        default=0.5,
        metavar="ALPHA",
        help="how strongly the overlay tints: above 0, up to 1 (the class colour alone); default: 0.5",
    )
    predict.add_argument(
        "--tta", choices=get_args(Tta), default="none", help="flip: average with the mirrored image's prediction"
    )
    predict.add_argument("--skip-bad", action="store_true", help="skip and list unreadable images instead of stopping")
    predict.add_argument(
        "--max-pixels",
        type=_positive,
        default=40_000_000,
        help="refuse larger images, from their header (default: 40,000,000)",
    )
    predict.add_argument("--batch-size", type=_positive, default=8, help="images per model call (default: 8)")
    predict.set_defaults(run=_predict)

    plots = commands.add_parser(
        "plots",
        help="DVC's plots page, readable offline",
        description="Write OUT/index.html: every plot dvc.yaml declares (as `dvc plots show`, or `dvc plots diff "
        "REVISION...` against the workspace), with the Vega libraries inline so that it renders without a network.",
    )
    plots.add_argument("revisions", nargs="*", metavar="REVISION", help="git revisions to overlay on the workspace")
    plots.add_argument("--out", type=Path, default=Path("dvc_plots"), help="output folder (default: dvc_plots)")
    plots.set_defaults(run=_plots)

    exps = commands.add_parser(
        "exps",
        help="the experiments side by side: params that differ, test and validation scores",
        description="`dvc exp show`, best test mean IoU first, without file hashes, paths.* params, per-class "
        "scores and params equal in every experiment: a sweep fits in 120 columns. It prints the `dvc exp show` "
        "command it runs, to add options to (--md, -A, ...).",
    )
    exps.set_defaults(run=_exps)

    report = commands.add_parser(
        "report",
        help="markdown report of params, metrics and figures against a base revision",
        description="Write OUT/report.md: the headline scores, the params and metrics that changed against BASE, "
        "every DVC plot with BASE and the workspace overlaid, and each figure of BASE beside the workspace's.",
    )
    report.add_argument("--base", default="main", help="git revision to compare the workspace with (default: main)")
    report.add_argument("--out", type=Path, default=Path("report"), help="folder for report.md and its images")
    report.set_defaults(run=_report)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_main(lambda: args.run(args))


def command() -> None:
    """The `segpipe` command (and `python -m segpipe`): `main` without TensorFlow's start-up lines."""
    filter_tensorflow_noise()
    main()
