"""Prepared data: what `prepare` writes and every later stage reads, as one typed, checked object.

A prepared folder holds TFRecord shards per split and `manifest.json`, which describes them.
`PreparedData.save_manifest` is the one writer of that file and `open_prepared` the one reader:
it validates every field and reads every shard through before anything trusts it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from segpipe import atomic, tfrecords
from segpipe.errors import ConfigError, DataError
from segpipe.outputs import MANIFEST
from segpipe.typed import from_mapping, to_mapping

SplitName = Literal["train", "val", "test"]
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")
STORAGE = "raw uint8: image S×S×3 RGB, mask S×S×1 class ids"


@dataclass(frozen=True)
class Normalization:
    """The model's first layer maps stored uint8 pixels `x` to `x * scale + offset`."""

    scale: float
    offset: float


@dataclass(frozen=True)
class Split:
    count: int = dataclasses.field(metadata={"key": "examples"})  # `examples` in manifest.json, as it always was
    shards: tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split


@dataclass(frozen=True)
class PreparedData:
    folder: Path
    source: Any  # a description of where the examples came from, for people
    image_size: int
    class_names: tuple[str, ...]
    normalization: Normalization
    storage: str
    splits: Splits
    missing: Any  # source entries listed but absent on disk, by source split
    skipped: Any  # bad examples skipped (data.on_bad_example: skip), by split, with the reason

    def __post_init__(self) -> None:
        problems = []
        if self.image_size < 1:
            problems.append(f"image_size must be >= 1, got {self.image_size}")
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            problems.append(f"class_names must name at least 2 distinct classes, got {list(self.class_names)}")
        for name in SPLITS:
            split = self.split(name)
            if split.count < 1:
                problems.append(f"splits.{name} must hold at least one example, got {split.count}")
            outside = [shard for shard in split.shards if Path(shard).name != shard or shard.startswith(".")]
            if outside or not split.shards:
                problems.append(f"splits.{name}.shards must be file names inside the folder, got {list(split.shards)}")
        if problems:
            raise DataError(f"{self.folder / MANIFEST}: {problems[0]}: run the prepare stage again")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: SplitName) -> Split:
        return getattr(self.splits, name)

    def count(self, split: SplitName) -> int:
        return self.split(split).count

    @property
    def example_bytes(self) -> int:
        """Bytes of one example's pixels in memory: the uint8 image and its mask."""
        return self.image_size**2 * 4

    def megabytes(self, split: SplitName) -> float:
        """The split's pixels in memory, in MB (2**20 bytes)."""
        return self.count(split) * self.example_bytes / 2**20

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches in one pass over the train split (the last one may be smaller)."""
        return math.ceil(self.count("train") / batch_size)

    def shard_paths(self, split: SplitName) -> list[Path]:
        return [self.folder / shard for shard in self.split(split).shards]

    def examples(self, split: SplitName) -> tf.data.Dataset:
        """(uint8 image S×S×3, uint8 mask S×S×1) pairs of `split`, in the order they were written."""
        size = self.image_size
        records = tfrecords.read_records(self.shard_paths(split))
        # A known length lets Keras count validation batches instead of running into the end of the data.
        records = records.apply(tf.data.experimental.assert_cardinality(self.count(split)))
        return records.map(
            lambda record: tfrecords.parse_example(record, size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def file_names(self, split: SplitName) -> list[str]:
        """The source file name of each example of `split`, in stored order."""
        records = tfrecords.read_records(self.shard_paths(split))
        return [name.decode() for name in records.map(tfrecords.parse_file_name).as_numpy_iterator()]

    def batches(self, split: SplitName, batch_size: int) -> tf.data.Dataset:
        """Batched examples of `split` in their stored order, unaugmented, for validation and evaluation."""
        return self.examples(split).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def arrays(self, split: SplitName) -> tuple[np.ndarray, np.ndarray]:
        """The whole split as two stacked arrays, images N×S×S×3 and masks N×S×S×1, in stored order."""
        images, masks = zip(*self.examples(split).as_numpy_iterator(), strict=True)
        return np.stack(images), np.stack(masks)

    def sample(self, split: SplitName, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A seeded sample of `count` examples (or all, if fewer) as stacked image and mask arrays."""
        return self.select(split, self.sample_indices(split, count, seed))

    def sample_indices(self, split: SplitName, count: int, seed: int) -> list[int]:
        """The positions (in stored order) of a seeded sample of `count` examples, or of all if fewer."""
        return [int(index) for index in np.random.default_rng(seed).permutation(self.count(split))[:count]]

    def select(self, split: SplitName, indices: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """The examples at `indices` (positions in stored order), stacked, in the order of `indices`."""
        order = [int(index) for index in indices]
        keep = tf.constant(sorted(order), dtype=tf.int64)
        pairs = self.examples(split).enumerate().filter(lambda i, _: tf.reduce_any(i == keep))
        found = {int(i): pair for i, pair in pairs.as_numpy_iterator()}
        return np.stack([found[i][0] for i in order]), np.stack([found[i][1] for i in order])

    def check_shards(self) -> None:
        """Read every shard through (CRCs, record counts against the manifest, image size)."""
        for name in SPLITS:
            found = sum(tfrecords.checked_record_count(path, self.image_size) for path in self.shard_paths(name))
            if found != self.count(name):
                raise DataError(
                    f"{self.folder / MANIFEST} says {name} has {self.count(name)} examples but its shards hold {found}"
                )

    def save_manifest(self) -> None:
        """Write `manifest.json` into the folder, atomically, key-sorted (equal data, equal bytes)."""
        fields = to_mapping(self)
        del fields["folder"]
        atomic.write_json(self.folder / MANIFEST, fields)


def open_prepared(folder: str | Path) -> PreparedData:
    """The prepared data in `folder`, after validating its manifest and reading every shard through."""
    prepared = read_manifest(folder)
    prepared.check_shards()
    return prepared


def read_manifest(folder: str | Path) -> PreparedData:
    """The prepared data `folder`'s manifest describes, validated, without reading the shards."""
    path = Path(folder) / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the prepare stage first") from None
    except ValueError as error:
        raise DataError(f"{path} is not valid JSON ({error}): run the prepare stage again") from None
    try:
        prepared = from_mapping(PreparedData, raw, given={"folder": Path(folder)}, noun="manifest field")
    except ConfigError as error:
        raise DataError(f"{path}: {error}: run the prepare stage again") from None
    return prepared
