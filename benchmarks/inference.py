"""Benchmark: the trained model in each served format, and flip test-time augmentation, in one run.

Trains the default recipe (params.yaml) on a dataset in the Oxford layout through the pipeline's
own code, or takes `--model` and `--prepared`, then prints two markdown tables:
- test-split scores without and with `--tta flip` (what `segpipe predict --tta flip` does);
- for the Keras model, the SavedModel, ONNX and the LiteRT flatbuffer (float32, float16, int8 weights):
  size on disk, images/s at batch 1 and batch 32 on this CPU, and agreement with the Keras model.

    python benchmarks/inference.py                                  # shared sample, 128 px
    python benchmarks/inference.py --model models/model.keras --prepared data/prepared
    python benchmarks/inference.py --quick --folder DIR             # smoke version (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from recipes import ROOT, benchmark_params, dataset_arguments

from segpipe.config import load_params
from segpipe.export import LITERT, ONNX, SAVED_MODEL, export_model
from segpipe.inference import Predictor, open_predictor, probabilities_with_tta
from segpipe.metrics import confusion_matrix, segmentation_scores
from segpipe.model import load_model, save_model
from segpipe.preparation import prepare_dataset
from segpipe.prepared import PreparedData, open_prepared
from segpipe.training import configure_runtime, train_model


def tta_scores(predictor: Predictor, prepared: PreparedData, tta: str) -> dict:
    total = np.zeros((prepared.num_classes, prepared.num_classes), dtype=np.int64)
    for images, masks in prepared.batches("test", 16).as_numpy_iterator():
        predicted = probabilities_with_tta(predictor, images, tta).argmax(-1)
        total += confusion_matrix(masks[..., 0], predicted, prepared.num_classes)
    return segmentation_scores(total, prepared.class_names)


def images_per_second(predictor: Predictor, images: np.ndarray, batch: int, seconds: float) -> float:
    """Images/s over `seconds` of back-to-back calls on batches of `batch` (after one warm-up call)."""
    batch_images = np.resize(images, (batch, *images.shape[1:]))
    predictor.probabilities(batch_images)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.probabilities(batch_images)
        done += batch
    return done / (time.perf_counter() - started)


def size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def format_rows(formats: dict[str, Path], images: np.ndarray, seconds: float) -> list[str]:
    reference = open_predictor(formats["Keras (.keras)"]).probabilities(images)
    rows = []
    for name, path in formats.items():
        predictor = open_predictor(path)
        probabilities = predictor.probabilities(images)
        rates = [images_per_second(predictor, images, batch, seconds) for batch in (1, 32)]
        agreement = (probabilities.argmax(-1) == reference.argmax(-1)).mean()
        rows.append(
            f"| {name} | {size_on_disk(path) / 1e6:.2f} | {rates[0]:.1f} | {rates[1]:.1f} | "
            f"{np.abs(probabilities - reference).max():.1e} | {100 * agreement:.3f}% |"
        )
    return rows


def trained_model(args: argparse.Namespace, tmp: Path) -> tuple[Path, PreparedData]:
    if args.model:
        return args.model, open_prepared(args.prepared)
    params = benchmark_params(load_params(args.params), args.folder, 32 if args.quick else args.image_size)
    params.validate()
    prepared = prepare_dataset(params.data, tmp / "prepared")
    train = params.train if not args.quick else dataclasses.replace(params.train, epochs=1, warmup_epochs=0)
    configure_runtime(train)
    model, _ = train_model(prepared, params.model, train)
    save_model(model, tmp / "model.keras", prepared.class_names)
    return tmp / "model.keras", prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dataset_arguments(parser, "the recipe to train")
    parser.add_argument("--model", type=Path, help="measure this .keras model instead of training one")
    parser.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared", help="with --model: its data")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to time each format and batch size")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, one epoch, short timings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    seconds = 0.2 if args.quick else args.seconds

    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        model_path, prepared = trained_model(args, Path(tmp))
        keras_predictor = open_predictor(model_path)
        print(f"\ntest split: {prepared.count('test')} images at {prepared.image_size} px\n")
        names = " | ".join(f"IoU {name}" for name in prepared.class_names)
        print(f"| test-time augmentation | pixel acc | mean IoU | {names} |")
        print("|---|---|---|" + "---|" * prepared.num_classes)
        for tta in ("none", "flip"):
            scores = tta_scores(keras_predictor, prepared, tta)
            per_class = " | ".join(f"{scores.iou[name]:.3f}" for name in prepared.class_names)
            print(f"| {tta} | {scores.pixel_accuracy:.4f} | {scores.mean_iou:.4f} | {per_class} |")

        model = load_model(model_path)
        formats = {"Keras (.keras)": model_path}
        for quantization, label in (
            ("none", "float32"),
            ("float16", "float16 weights"),
            ("dynamic_range", "int8 weights"),
        ):
            export_model(model, prepared.class_names, Path(tmp) / quantization, quantization)
            if quantization == "none":
                formats["SavedModel"] = Path(tmp) / quantization / SAVED_MODEL
                formats["ONNX"] = Path(tmp) / quantization / ONNX
            formats[f"LiteRT, {label}"] = Path(tmp) / quantization / LITERT
        images, _ = prepared.arrays("test")
        print("\n| format | MB on disk | img/s, batch 1 | img/s, batch 32 | max prob. diff | argmax agreement |")
        print("|---|---|---|---|---|---|")
        print("\n".join(format_rows(formats, images, seconds)))


if __name__ == "__main__":
    main()
