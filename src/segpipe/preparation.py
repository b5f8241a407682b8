"""The prepare stage's work: source examples → resized, fixed-size examples in TFRecord shards."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from segpipe import atomic, sources, tfrecords
from segpipe.config import DataConfig
from segpipe.errors import DataError
from segpipe.images import resize_image, resize_mask
from segpipe.outputs import MANIFEST
from segpipe.prepared import SPLITS, STORAGE, Normalization, PreparedData, Split, Splits

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
    with sources.open_source(data) as source, atomic.atomic_dir(out_dir, MANIFEST) as tmp:
        if source.sizes["train"] < 2 or source.sizes["test"] < 1:
            raise DataError(f"{source.description}: need at least 2 train and 1 test examples, found {source.sizes}")
        val = sources.held_out_indices(source.sizes["train"], data.val_fraction, data.split_seed)
        entries = {
            "train": (entry for i, entry in enumerate(source.entries("train")) if i not in val),
            "val": (entry for i, entry in enumerate(source.entries("train")) if i in val),
            "test": source.entries("test"),
        }
        skipped: dict[str, list[dict[str, str]]] = {}
        splits = {}
        for split in SPLITS:
            skipped[split] = []
            records = _records(entries[split], data.image_size, data.on_bad_example, skipped[split], workers)
            written, shards = tfrecords.write_shards(tmp, split, records, data.shard_size)
            log.info("%s: wrote %d examples in %d shards, skipped %d", split, written, len(shards), len(skipped[split]))
            if not written:
                raise DataError(f"{source.description}: no {split} example left after skipping {len(skipped[split])}")
            splits[split] = Split(examples=written, shards=tuple(shards))
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


def _records(
    entries: Iterator[sources.Entry], size: int, on_bad: str, skipped: list[dict[str, str]], workers: int
) -> Iterator[bytes]:
    """Serialized, resized examples in the entries' order; bad ones raise, or are skipped and noted in `skipped`."""
    examples = in_order(lambda entry: _example_or_error(entry, size), entries, workers)
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


def in_order(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """(item, function(item)) for each item, computed by `workers` threads, yielded in the items' order.

    At most 2 × `workers` results wait at a time, so memory stays bounded whatever the number of items.
    Decoding (PIL) and resizing (TensorFlow) release Python's lock for most of their work, so the threads
    overlap (README "Speed switches" has the figures).
    """
    pool = ThreadPoolExecutor(workers, thread_name_prefix="prepare")
    pending: collections.deque[tuple[T, Future[R]]] = collections.deque()
    try:
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) > 2 * workers:
                item, result = pending.popleft()
                yield item, result.result()
        while pending:
            item, result = pending.popleft()
            yield item, result.result()
    finally:
        pool.shutdown(cancel_futures=True)  # an error or a closed generator: start nothing more
