"""Benchmark: what each speed switch buys on this machine, every comparison within one run.

- prepare: decoding and resizing with one worker thread against one per core (images/s, and
  whether the shards are the same bytes);
- input: the training input pipeline with the train split in memory against streamed from its
  shards (`train.in_memory_max_mb` below the split's size), images/s;
- train: the default recipe (params.yaml) under each training switch, each in a fresh process
  (determinism and XLA are process-wide), wall time with compilation, and test-split scores.

    python benchmarks/speed.py                               # the shared sample, 128 px, every section
    python benchmarks/speed.py --sections train --epochs 5 --base-filters 32
    python benchmarks/speed.py --quick --folder DIR          # smoke version (tests; float32 and bfloat16 only)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recipes import benchmark_params, dataset_arguments, run_recipe

from segpipe.config import Params, TrainConfig, load_params
from segpipe.input_pipeline import training_dataset
from segpipe.preparation import prepare_dataset, usable_cores
from segpipe.prepared import SPLITS, PreparedData, open_prepared

# Training variants: changes to `train` on top of params.yaml; the first is the yardstick.
# XLA needs determinism off (refused otherwise).
VARIANTS = {
    "float32": {"mixed_precision": "off"},
    "float32, deterministic: false": {"mixed_precision": "off", "deterministic": False},
    "float32, deterministic: false, jit_compile: true": {
        "mixed_precision": "off",
        "deterministic": False,
        "jit_compile": True,
    },
    "bfloat16": {"mixed_precision": "bfloat16"},
}
QUICK_VARIANTS = {name: VARIANTS[name] for name in ("float32", "bfloat16")}  # --quick: no XLA compile


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def prepare_section(params: Params, tmp: Path, rounds: int) -> Path:
    """Prepare with 1 worker and with one per core, alternating `rounds` times; return a prepared folder."""
    cores = usable_cores()
    rates: dict[int, list[float]] = {1: [], cores: []}
    digests = {}
    for round_ in range(rounds):
        for workers in rates:
            out = tmp / f"prepared-{workers}-{round_}"
            started = time.perf_counter()
            prepared = prepare_dataset(params.data, out, workers=workers)
            rates[workers].append(sum(prepared.count(s) for s in SPLITS) / (time.perf_counter() - started))
            digests[workers] = folder_digest(out)
    one, all_ = max(rates[1]), max(rates[cores])
    print(f"prepare, 1 worker: {', '.join(f'{r:.0f}' for r in rates[1])} images/s")
    print(f"prepare, {cores} workers: {', '.join(f'{r:.0f}' for r in rates[cores])} images/s")
    same = "identical" if digests[1] == digests[cores] else "DIFFERENT"
    print(f"prepare speed-up (best of {rounds}): x{all_ / one:.2f}; shards and manifest {same} ({digests[1]})\n")
    return out


def input_pipeline_rate(prepared: PreparedData, train: TrainConfig, seconds: float) -> float:
    """Images/s the training input pipeline delivers on its own, after one epoch of warm-up."""
    batches = iter(training_dataset(prepared, train))
    for _ in range(prepared.steps_per_epoch(train.batch_size) + 1):
        next(batches)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        images += int(next(batches)[0].shape[0])
    return images / (time.perf_counter() - started)


def input_section(params: Params, prepared_dir: Path, seconds: float) -> None:
    prepared = open_prepared(prepared_dir)
    budget = prepared.megabytes("train") / 4  # a shuffle buffer of a quarter of the split
    in_memory = input_pipeline_rate(prepared, params.train, seconds)
    streamed_train = dataclasses.replace(params.train, in_memory_max_mb=budget)
    streamed = input_pipeline_rate(prepared, streamed_train, seconds)
    print(f"input pipeline, train split in memory ({prepared.megabytes('train'):.1f} MB): {in_memory:.0f} images/s")
    print(f"input pipeline, streamed from shards (buffer {budget:.1f} MB): {streamed:.0f} images/s")
    print(f"streamed / in memory: x{streamed / in_memory:.2f}\n")


def train_variant(params: Params, prepared_dir: Path, changes: dict) -> dict:
    """Train the recipe with `changes` in this process; the table's fields (wall time, test-split scores)."""
    train = dataclasses.replace(params.train, **changes)
    row = run_recipe("variant", open_prepared(prepared_dir), params.model, train)
    return {key: row[key] for key in ("epochs", "wall_s", "images_per_s", "pixel_accuracy", "mean_iou")}


def train_section(args: argparse.Namespace, prepared_dir: Path) -> None:
    rows = {}
    variants = QUICK_VARIANTS if args.quick else VARIANTS
    for name, changes in variants.items():
        command = [sys.executable, __file__, "--variant", json.dumps(changes), "--prepared", str(prepared_dir)]
        command += ["--folder", str(args.folder), "--params", str(args.params), "--image-size", str(args.image_size)]
        command += ["--quick"] if args.quick else []
        command += ["--epochs", str(args.epochs)] if args.epochs else []
        command += ["--base-filters", str(args.base_filters)] if args.base_filters else []
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode:
            print(f"{name}: failed\n{result.stderr[-2000:]}")
            continue
        rows[name] = json.loads(result.stdout.strip().splitlines()[-1])
    header = "| train variant | epochs | wall s (compile incl.) | train img/s | × float32 time | pixel acc | mean IoU |"
    print(header + "\n|" + "---|" * 7)
    base = rows.get("float32", {}).get("wall_s")
    for name, row in rows.items():
        ratio = f"{row['wall_s'] / base:.2f}" if base else "-"
        print(
            f"| {name} | {row['epochs']} | {row['wall_s']:.1f} | {row['images_per_s']:.1f} | {ratio} | "
            f"{row['pixel_accuracy']:.4f} | {row['mean_iou']:.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dataset_arguments(parser, "the recipe's params")
    parser.add_argument("--epochs", type=int, help="train: epochs of every variant (default: the recipe's)")
    parser.add_argument("--base-filters", type=int, help="train: model.base_filters of every variant")
    parser.add_argument("--sections", default="prepare,input,train", help="comma-separated: prepare,input,train")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, short measures, one epoch")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: train one variant in this process
    parser.add_argument("--prepared", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    params = benchmark_params(load_params(args.params), args.folder, 32 if args.quick else args.image_size)
    epochs = 1 if args.quick else args.epochs or params.train.epochs
    train = dataclasses.replace(params.train, epochs=epochs)
    model = dataclasses.replace(params.model, base_filters=args.base_filters or params.model.base_filters)
    params = dataclasses.replace(params, train=train, model=model)
    params.validate()
    if args.variant is not None:
        print(json.dumps(train_variant(params, args.prepared, json.loads(args.variant))))
        return
    sections = set(args.sections.split(","))
    print(f"{args.folder}, {params.data.image_size} px, {usable_cores()} usable cores\n")
    with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
        prepared_dir = prepare_section(params, Path(tmp), 1 if args.quick or "prepare" not in sections else 3)
        if "input" in sections:
            input_section(params, prepared_dir, 1.0 if args.quick else 10.0)
        if "train" in sections:
            print(f"base_filters {params.model.base_filters}, batch {params.train.batch_size}\n")
            train_section(args, prepared_dir)


if __name__ == "__main__":
    main()
