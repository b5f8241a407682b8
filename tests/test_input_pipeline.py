"""The training input pipeline: a train split above `train.in_memory_max_mb` is streamed from its
shards, each epoch holds every example once, and a resumed run sees the batches an uninterrupted one does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segpipe.config import AugmentConfig, params_from_dict
from segpipe.input_pipeline import training_dataset
from segpipe.prepared import PreparedData
from tests.helpers import TINY, merged, write_tiny_prepared

EXAMPLES = 20  # 8×8 examples of 256 bytes, in shards of two
STREAMED = 1280 / 2**20  # a budget of five examples: the split (5 kB) is streamed through a buffer of five


@pytest.fixture
def prepared(tmp_path):
    return write_tiny_prepared(tmp_path / "prepared", per_split=EXAMPLES)


def train_config(project_params, megabytes: float):
    train = params_from_dict(merged(project_params, TINY)).train
    no_augmentation = AugmentConfig(flip=False, min_scale=1.0, jitter=0.0)  # batches show the stored pixels
    return dataclasses.replace(train, batch_size=6, in_memory_max_mb=megabytes, augment=no_augmentation)


def epochs_of_images(prepared, train, start_epoch: int, epochs: int) -> list[np.ndarray]:
    """The images of each epoch, in the order batches deliver them."""
    steps = prepared.steps_per_epoch(train.batch_size)
    batches = [images.numpy() for images, _ in training_dataset(prepared, train, start_epoch).take(steps * epochs)]
    return [np.concatenate(batches[epoch * steps : (epoch + 1) * steps]) for epoch in range(epochs)]


def as_set(images: np.ndarray) -> list[bytes]:
    return sorted(image.tobytes() for image in images)


@pytest.mark.parametrize("megabytes", [2048, STREAMED], ids=["in-memory", "streamed"])
def test_every_epoch_holds_every_train_example_once(prepared, project_params, megabytes):
    train = train_config(project_params, megabytes)
    stored, _ = prepared.arrays("train")
    for images in epochs_of_images(prepared, train, 0, 3):
        assert as_set(images) == as_set(stored.astype(np.float32))


def test_streamed_epochs_come_in_a_new_order_each_epoch(prepared, project_params):
    first, second = epochs_of_images(prepared, train_config(project_params, STREAMED), 0, 2)
    stored, _ = prepared.arrays("train")
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, stored)


def test_a_streamed_run_resumed_at_epoch_two_sees_the_batches_of_an_uninterrupted_run(prepared, project_params):
    train = train_config(project_params, STREAMED)
    uninterrupted = epochs_of_images(prepared, train, 0, 4)
    resumed = epochs_of_images(prepared, train, 2, 2)
    np.testing.assert_array_equal(resumed[0], uninterrupted[2])
    np.testing.assert_array_equal(resumed[1], uninterrupted[3])


def test_streaming_is_chosen_above_the_budget_and_logged(prepared, project_params, caplog, monkeypatch):
    caplog.set_level("INFO", logger="segpipe.input_pipeline")
    training_dataset(prepared, train_config(project_params, 2048))
    assert "streaming" not in caplog.text

    def loaded_whole(self, split):
        raise AssertionError(f"the {split} split was loaded into memory")

    monkeypatch.setattr(PreparedData, "arrays", loaded_whole)
    next(iter(training_dataset(prepared, train_config(project_params, STREAMED))))
    assert "streaming the train split from its shards (0.00488 MB > train.in_memory_max_mb = 0.0012207)" in caplog.text
