"""The prepare stage's work: source examples → resized, fixed-size examples in TFRecord shards."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Generic, TypeVar

from segpipe import atomic, sources, tfrecords
from segpipe.config import DataConfig
from segpipe.errors import DataError
from segpipe.images import resize_image, resize_mask
from segpipe.outputs import MANIFEST
from segpipe.prepared import SPLITS, STORAGE, Normalization, PreparedData, Split, Splits
from segpipe.progress import Progress, counted

log = logging.getLogger(__name__)

# Stored pixels stay uint8; the model's first layer maps them into [0, 1].
NORMALIZATION = Normalization(scale=1.0 / 255.0, offset=0.0)

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """The CPU cores this process may run on (fewer than the machine's under a container or taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prepare_dataset(data: DataConfig, out_dir: str | Path, workers: int | None = None) -> PreparedData:
    """Read the source `data` names, write train/val/test shards and the manifest atomically.

    Examples are decoded and resized by `workers` threads (default: one per usable core) and
    written in the source's order, so the output is the same bytes whatever the number of workers.
    """
    workers = workers or usable_cores()
    # Innermost last: on an error the threads stop before the temporary folder and the source go away.
    with (
        sources.open_source(data) as source,
        atomic.atomic_dir(out_dir, MANIFEST) as tmp,
        OrderedThreads(partial(_example_or_error, size=data.image_size), workers) as threads,
    ):
        if source.sizes["train"] < 2 or source.sizes["test"] < 1:
            raise DataError(f"{source.description}: need at least 2 train and 1 test examples, found {source.sizes}")
        val = sources.held_out_indices(source.sizes["train"], data.val_fraction, data.split_seed)
        totals = {"train": source.sizes["train"] - len(val), "val": len(val), "test": source.sizes["test"]}
        skipped: dict[str, list[dict[str, str]]] = {}
        splits = {}
        for split in SPLITS:
            skipped[split] = []
            progress = Progress(log, split, totals[split], "images prepared")
            # Closed here, in this thread, whatever happens: no generator of the chain is left for Python's
            # garbage collector to finalise later in whichever thread it runs (a worker's, at exit).
            with (
                contextlib.closing(_split_entries(source, split, val)) as entries,
                contextlib.closing(threads.results(entries)) as examples,
            ):
                records = _records(counted(examples, progress), data.on_bad_example, skipped[split])
                written, shards = tfrecords.write_shards(tmp, split, records, data.shard_size)
            log.info("%s: wrote %d examples in %d shards, skipped %d", split, written, len(shards), len(skipped[split]))
            if not written:
                raise DataError(f"{source.description}: no {split} example left after skipping {len(skipped[split])}")
            splits[split] = Split(count=written, shards=tuple(shards))
        prepared = PreparedData(
            folder=tmp,
            source=source.description,
            image_size=data.image_size,
            class_names=tuple(source.class_names),
            normalization=NORMALIZATION,
            storage=STORAGE,
            splits=Splits(**splits),
            missing={"train": source.missing["train"], "test": source.missing["test"]},
            skipped=skipped,
        )
        prepared.save_manifest()
    return dataclasses.replace(prepared, folder=Path(out_dir))


def _split_entries(source: sources.Source, split: str, val: set[int]) -> Iterator[sources.Entry]:
    """The entries of one prepared split: the source's train entries outside or inside `val`, or its test ones."""
    if split == "test":
        yield from source.entries("test")
        return
    for index, entry in enumerate(source.entries("train")):
        if (index in val) == (split == "val"):
            yield entry


def _records(
    examples: Iterator[tuple[sources.Entry, bytes | DataError]], on_bad: str, skipped: list[dict[str, str]]
) -> Iterator[bytes]:
    """The serialized examples in order; a bad one raises its error, or is skipped and noted in `skipped`."""
    for entry, example in examples:
        if isinstance(example, DataError):
            if on_bad == "error":
                raise example
            log.warning("skipping %s", example)
            skipped.append({"name": entry.name, "reason": str(example)})
            continue
        yield example


def _example_or_error(entry: sources.Entry, size: int) -> bytes | DataError:
    """The entry's serialized, resized example, or the `DataError` loading it raised (raised in order by the caller)."""
    try:
        image, mask = entry.load()
    except DataError as error:
        return error
    return tfrecords.serialize_example(resize_image(image, size), resize_mask(mask, size), entry.name)


class OrderedThreads(Generic[T, R]):
    """`function` computed by `workers` threads, its results handed back in the items' order.

    Decoding (PIL) and resizing (TensorFlow) release Python's lock for most of their work, so the threads
    overlap (docs/performance.md has the figures). The pool belongs to this object, not to a generator:
    `close` (at the end of a `with` block) cancels the work not yet started and waits for the running items,
    in the caller's thread. A generator's `finally` would run wherever the generator is finalised; once it
    ran in a worker thread tracing the resize function and joined the other workers: a hang at exit.
    """

    def __init__(self, function: Callable[[T], R], workers: int):
        self.function, self.workers = function, workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="prepare")

    def __enter__(self) -> OrderedThreads[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Start nothing more and wait for the items already running (each a single decode and resize)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def results(self, items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """(item, function(item)) for each item, in order; at most 2 × `workers` results wait at a time, so
        memory stays bounded whatever the number of items. Abandoning it leaves its items to `close`."""
        pending: collections.deque[tuple[T, Future[R]]] = collections.deque()
        for item in items:
            pending.append((item, self.pool.submit(self.function, item)))
            if len(pending) > 2 * self.workers:
                item, result = pending.popleft()
                yield item, result.result()
        while pending:
            item, result = pending.popleft()
            yield item, result.result()
