"""The prepare stage's work: source examples → resized, fixed-size examples in TFRecord shards."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

from segpipe import atomic, sources, tfrecords
from segpipe.config import DataConfig
from segpipe.errors import DataError
from segpipe.images import resize_image, resize_mask
from segpipe.prepared import MANIFEST, SPLITS, STORAGE, Normalization, PreparedData, Split, Splits

log = logging.getLogger(__name__)

# Stored pixels stay uint8; the model's first layer maps them into [0, 1].
NORMALIZATION = Normalization(scale=1.0 / 255.0, offset=0.0)


def prepare_dataset(data: DataConfig, out_dir: str | Path) -> PreparedData:
    """Read the source `data` names, write train/val/test shards and the manifest atomically."""
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
            records = _records(entries[split], data.image_size, data.on_bad_example, skipped[split])
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
    entries: Iterator[sources.Entry], size: int, on_bad: str, skipped: list[dict[str, str]]
) -> Iterator[bytes]:
    """Serialized, resized examples; bad ones raise, or are skipped and noted in `skipped`."""
    for entry in entries:
        try:
            image, mask = entry.load()
        except DataError as error:
            if on_bad == "error":
                raise
            log.warning("skipping %s", error)
            skipped.append({"name": entry.name, "reason": str(error)})
            continue
        yield tfrecords.serialize_example(resize_image(image, size), resize_mask(mask, size), entry.name)
