"""Benchmark: the reference notebook's recipe against this project's default, in one run.

Both train and evaluate through the pipeline's own code (folder source, TFRecords, tf.data,
`train_model`, `confusion_on`) on a dataset in the Oxford layout, at the same image size.
Prints one markdown table (benchmarks/speed.py measures the input pipeline and the speed switches).

    python benchmarks/recipes.py                         # the shared sample, 128 px
    python benchmarks/recipes.py --quick --folder DIR    # smoke version (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segpipe.config import AugmentConfig, ModelConfig, Params, TrainConfig, load_params
from segpipe.evaluation import confusion_on
from segpipe.inference import keras_predictor
from segpipe.metrics import segmentation_scores
from segpipe.preparation import prepare_dataset
from segpipe.prepared import SPLITS, PreparedData
from segpipe.training import configure_runtime, train_model

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "oxford_iiit_pet_sample"

# The reference notebook: 64..1024 filters, dropout 0.3 after every pool and concat, no batch
# norm, batch 64, Adam 1e-3, 20 epochs, random horizontal flips, cross-entropy.
REFERENCE_MODEL = ModelConfig(depth=4, base_filters=64, batch_norm=False, batch_norm_momentum=0.99, dropout=0.3)


def reference_train(default: TrainConfig, epochs: int) -> TrainConfig:
    return dataclasses.replace(
        default,
        epochs=epochs,
        batch_size=64,
        learning_rate=1e-3,
        lr_schedule="constant",
        warmup_epochs=0,
        loss_function="cross_entropy",
        early_stopping_patience=0,
        augment=AugmentConfig(flip=True, min_scale=1.0, jitter=0.0),
        mixed_precision="off",
        jit_compile=False,
        distribute="none",
    )


def forward_gflops(model: keras.Model) -> float:
    """Multiply-adds ×2 of every convolution for one image (a backbone nested in the model included), in GFLOPs."""
    return sum(_convolution_flops(layer) for layer in _layers(model)) / 1e9


def _layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _convolution_flops(layer: keras.layers.Layer) -> int:
    """2 × kernel size × output positions (input positions for a transposed convolution); 0 for other layers.
    A depthwise kernel is (kh, kw, in, multiplier): one product per element and position, as for the others."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, height, width, _ = layer.input.shape
    elif isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
        _, height, width, _ = layer.output.shape
    else:
        return 0
    return 2 * int(np.prod(layer.kernel.shape)) * height * width


def machine_line() -> str:
    """The CPU and the instruction sets that decide its speed, so that figures of two machines are not mixed up."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    shown = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if flag in flags]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"machine: {model or platform.processor() or 'unknown CPU'}, {cores} cores, {' '.join(shown) or 'no AVX2'}"


def matmul_peak_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """Sustained float32 matmul rate of this machine, the yardstick for achieved training FLOP/s."""
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    tf.matmul(a, b).numpy()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tf.matmul(a, b).numpy()
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started) / 1e9


def run_recipe(name: str, prepared: PreparedData, model_config: ModelConfig, train: TrainConfig) -> dict:
    configure_runtime(train)
    started = time.perf_counter()
    model, history = train_model(prepared, model_config, train)
    wall = time.perf_counter() - started
    epochs = len(history["loss"])
    seen = prepared.count("train") * epochs
    cm = confusion_on(keras_predictor(model, Path(name)), prepared.batches("test", 16), prepared.num_classes)
    scores = segmentation_scores(cm, prepared.class_names)
    gflops = forward_gflops(model)
    return {
        "recipe": name,
        "params": model.count_params(),
        "gflops": gflops,
        "epochs": epochs,
        "images_per_s": seen / wall,
        "wall_s": wall,
        "train_gflops_per_s": 3 * gflops * seen / wall,  # forward + backward ≈ 3 × forward
        **dataclasses.asdict(scores),
    }


def table(rows: list[dict], peak: float, class_names: tuple[str, ...]) -> str:
    header = [
        "recipe",
        "params",
        "fwd GFLOPs/img",
        "epochs",
        "train img/s",
        "train wall s",
        "GFLOP/s (% of peak)",
        "pixel acc",
        "mean IoU",
    ]
    header += [f"IoU {name}" for name in class_names]
    cells = [
        [
            row["recipe"],
            f"{row['params'] / 1e6:.2f}M",
            f"{row['gflops']:.2f}",
            str(row["epochs"]),
            f"{row['images_per_s']:.1f}",
            f"{row['wall_s']:.0f}",
            f"{row['train_gflops_per_s']:.0f} ({100 * row['train_gflops_per_s'] / peak:.0f}%)",
            f"{row['pixel_accuracy']:.3f}",
            f"{row['mean_iou']:.3f}",
            *(f"{row['iou'][name]:.3f}" for name in class_names),
        ]
        for row in rows
    ]
    return markdown_table(header, cells)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def dataset_arguments(parser: argparse.ArgumentParser, params_help: str) -> None:
    """--folder, --params and --image-size: what every benchmark trains and measures on."""
    parser.add_argument("--folder", type=Path, default=SHARED_SAMPLE, help="dataset in the Oxford archive layout")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help=params_help)
    parser.add_argument("--image-size", type=int, default=128)


def benchmark_params(params: Params, folder: Path, image_size: int) -> Params:
    data = dataclasses.replace(
        params.data,
        source="folder",
        image_size=image_size,
        input=str(folder),
        folder=dataclasses.replace(params.data.folder, layout="oxford"),
    )
    return dataclasses.replace(params, data=data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dataset_arguments(parser, "the default recipe's params")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, one epoch each")
    parser.add_argument("--default-only", action="store_true", help="train only the default recipe (for tuning it)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    image_size = 32 if args.quick else args.image_size
    params = benchmark_params(load_params(args.params), args.folder, image_size)
    params.validate()
    with tempfile.TemporaryDirectory(prefix="benchmark-") as tmp:
        started = time.perf_counter()
        prepared = prepare_dataset(params.data, Path(tmp) / "prepared")
        total = sum(prepared.count(split) for split in SPLITS)
        rate = total / (time.perf_counter() - started)
        print(f"prepared {total} images from {args.folder} at {image_size} px: {rate:.0f} images/s")
        epochs = 1 if args.quick else None
        default_train = dataclasses.replace(
            params.train,
            epochs=epochs or params.train.epochs,
            warmup_epochs=0 if args.quick else params.train.warmup_epochs,
        )
        rows = [run_recipe("project default", prepared, params.model, default_train)]
        if not args.default_only:
            reference = reference_train(params.train, epochs or 20)
            rows.insert(0, run_recipe("reference notebook", prepared, REFERENCE_MODEL, reference))
        peak = matmul_peak_gflops(seconds=0.5 if args.quick else 3.0)
    print(f"\n{machine_line()}; fp32 matmul peak: {peak:.0f} GFLOP/s; test split: {prepared.count('test')} images\n")
    print(table(rows, peak, prepared.class_names))
    if args.default_only:
        return
    reference, default = rows
    print(
        f"\ndefault vs reference: mean IoU {default['mean_iou'] - reference['mean_iou']:+.3f}, "
        f"pixel accuracy {default['pixel_accuracy'] - reference['pixel_accuracy']:+.3f}, "
        f"training wall time ×{default['wall_s'] / reference['wall_s']:.3f}"
    )


if __name__ == "__main__":
    main()
