"""Where examples come from: TFDS builders, the embedded `synthetic_pets` among them.

Every source yields `Example`s with the original image (uint8 H×W×3), its Oxford-style trimap
(uint8 H×W×1, 1 pet, 2 background, 3 border) and a file name, in a stable order.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import tensorflow_datasets as tfds

from segpipe.config import EMBEDDED_DATASET, DataConfig
from segpipe.synthetic_pets import SyntheticPets, config_for

log = logging.getLogger(__name__)

TRIMAP_CLASS_NAMES = ("pet", "background", "border")


@dataclass(frozen=True)
class Example:
    file_name: str
    image: np.ndarray
    trimap: np.ndarray


def known_datasets() -> list[str]:
    """Names of every TFDS dataset this installation can build, the embedded one included."""
    return sorted(set(tfds.list_builders(with_community_datasets=False)) | {EMBEDDED_DATASET})


@contextmanager
def prepared_builder(data: DataConfig) -> Iterator[tfds.core.DatasetBuilder]:
    """Yield the TFDS builder named by `data.dataset`, with its data downloaded and prepared.

    The embedded dataset is generated afresh in a temporary folder: it takes seconds and can
    never be a stale cache of older generator code.
    """
    if data.dataset_name == EMBEDDED_DATASET:
        embedded = data.embedded
        config = config_for(
            embedded.train_examples, embedded.test_examples, embedded.min_side, embedded.max_side, embedded.seed
        )
        with tempfile.TemporaryDirectory(prefix="synthetic_pets-") as data_dir:
            builder = SyntheticPets.with_sizes(config, data_dir=data_dir, version=data.dataset_version)
            builder.download_and_prepare()
            yield builder
        return
    builder = tfds.builder(data.dataset, data_dir=data.tfds_data_dir)
    builder.download_and_prepare()
    yield builder


def split_size(builder: tfds.core.DatasetBuilder, split: str) -> int:
    return builder.info.splits[split].num_examples


def iter_examples(builder: tfds.core.DatasetBuilder, split: str) -> Iterator[Example]:
    """The split's examples in TFDS's fixed, deterministic order."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    for record in tfds.as_numpy(dataset):
        yield Example(
            file_name=record["file_name"].decode("utf-8"),
            image=record["image"],
            trimap=record["segmentation_mask"],
        )
