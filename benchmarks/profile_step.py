"""Benchmark: where a training step of the default recipe spends its time, from TensorFlow's profiler.

Builds and compiles the model as the train stage does (params.yaml: architecture, mixed precision,
loss, metrics), feeds it the stage's own input pipeline on a dataset in the Oxford layout, and
prints, per step: the first epoch (tracing and kernel set-up) against a steady one, then the
profiled ops' own time (time inside an op, minus the ops it runs) grouped by what they compute.

    python benchmarks/profile_step.py                          # the shared sample, 128 px
    python benchmarks/profile_step.py --trace-dir logs/profile # also keep the trace for TensorBoard
    python benchmarks/profile_step.py --quick --folder DIR     # smoke version (tests)
"""

from __future__ import annotations

import argparse
import collections
import logging
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from recipes import benchmark_params, dataset_arguments, machine_line, markdown_table
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from segpipe.config import load_params
from segpipe.input_pipeline import training_dataset
from segpipe.model import build_unet
from segpipe.optimization import compile_model
from segpipe.precision import precision_policy
from segpipe.preparation import prepare_dataset
from segpipe.training import configure_runtime

# What an op computes, from its name: the first rule whose pattern is in the lowercased name wins.
# Keras names ops after the layer or the compiled function that creates them.
CATEGORIES = (
    ("conv2d", "convolutions (forward and backward)"),
    ("biasadd", "convolutions (forward and backward)"),
    ("batch_normalization", "batch norm (Keras: float32, not fused)"),
    ("compile_loss", "loss (cross-entropy + Dice)"),
    ("compile_metrics", "metrics (pixel accuracy, mean IoU)"),
    ("mean_iou", "metrics (pixel accuracy, mean IoU)"),
    ("pixel_accuracy", "metrics (pixel accuracy, mean IoU)"),
    (":scatternd", "metrics (pixel accuracy, mean IoU)"),  # MeanIoU's confusion matrix
    (":argmax", "metrics (pixel accuracy, mean IoU)"),  # predicted classes, for both metrics
    ("adam", "optimizer"),
    ("variable", "optimizer"),
    (":cast", "dtype casts"),
    ("unet", "ReLU, pooling, concatenation, rescaling"),
)
OTHER = "other (executor, data hand-off, gradient sums)"


def category(op_name: str) -> str:
    low = op_name.lower()
    return next((name for pattern, name in CATEGORIES if pattern in low), OTHER)


def self_times(trace_dir: Path) -> collections.Counter:
    """Picoseconds each op name spent in itself on the CPU's compute threads of the trace in `trace_dir`."""
    space = xplane_pb2.XSpace()
    space.ParseFromString(max(trace_dir.rglob("*.xplane.pb")).read_bytes())
    plane = next(plane for plane in space.planes if plane.name == "/host:CPU")
    times: collections.Counter = collections.Counter()
    for line in plane.lines:
        if not line.name.startswith(("tf_Compute", "tf_numa")):
            continue
        open_events: list[tuple[int, str]] = []  # (end, name) of the events enclosing the current one
        for event in sorted(line.events, key=lambda event: (event.offset_ps, -event.duration_ps)):
            while open_events and open_events[-1][0] <= event.offset_ps:
                open_events.pop()
            name = plane.event_metadata[event.metadata_id].name
            if open_events:
                times[open_events[-1][1]] -= event.duration_ps
            times[name] += event.duration_ps
            open_events.append((event.offset_ps + event.duration_ps, name))
    return times


def category_rows(times: collections.Counter, steps: int) -> list[list[str]]:
    """Per category: milliseconds per step summed over the compute threads (so above wall time with
    several cores busy), and share of the total."""
    by_category: collections.Counter = collections.Counter()
    for name, picoseconds in times.items():
        by_category[category(name)] += picoseconds
    total = sum(by_category.values())
    return [
        [name, f"{picoseconds / 1e9 / steps:.1f}", f"{100 * picoseconds / total:.0f}%"]
        for name, picoseconds in by_category.most_common()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dataset_arguments(parser, "the recipe to profile")
    parser.add_argument("--epochs", type=int, default=3, help="steady epochs timed, then one profiled")
    parser.add_argument("--trace-dir", type=Path, help="keep the profiler's trace here (TensorBoard's profile tab)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, one timed epoch")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    params = benchmark_params(load_params(args.params), args.folder, 32 if args.quick else args.image_size)
    params.validate()
    train = params.train
    epochs = 1 if args.quick else args.epochs
    configure_runtime(train)
    policy = precision_policy(train.mixed_precision)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        prepared = prepare_dataset(params.data, Path(tmp) / "prepared")
        steps = prepared.steps_per_epoch(train.batch_size)
        model = build_unet(prepared.image_size, prepared.num_classes, params.model, prepared.normalization, policy)
        compile_model(model, prepared.num_classes, train, steps, policy)
        batches = training_dataset(prepared, train)
        validation = prepared.batches("val", train.batch_size)

        def seconds_per_step(epochs: int) -> float:
            started = time.perf_counter()
            model.fit(batches, steps_per_epoch=steps, epochs=epochs, validation_data=validation, verbose=0)
            return (time.perf_counter() - started) / (epochs * steps)

        first = seconds_per_step(1)
        steady = seconds_per_step(epochs)
        trace_dir = args.trace_dir or Path(tmp) / "trace"
        tf.profiler.experimental.start(str(trace_dir))
        model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        times = self_times(trace_dir)

    run = f"dtype policy {policy}; batch {train.batch_size}; {prepared.image_size} px; {steps} steps/epoch"
    print(f"\n{machine_line()}; {run}\n")
    print(f"first epoch: {1000 * first:.0f} ms/step (tracing, kernel set-up); steady: {1000 * steady:.0f} ms/step\n")
    print(markdown_table(["ops", "thread ms/step", "share"], category_rows(times, steps)))
    top = ", ".join(f"{name} {picoseconds / 1e9 / steps:.1f}" for name, picoseconds in _top(times, OTHER, 6))
    print(f"\nlargest in {OTHER!r} (thread ms/step): {top}")


def _top(times: collections.Counter, category_name: str, count: int) -> list[tuple[str, int]]:
    return [(name, ps) for name, ps in times.most_common() if category(name) == category_name][:count]


if __name__ == "__main__":
    main()
