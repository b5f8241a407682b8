"""The train split as endless, seeded, augmented batches: held in memory or streamed from its shards.

Every batch and its augmentation seed follow from `train.seed` and the epoch, so a resumed run sees
the batches an uninterrupted one would.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from segpipe import tfrecords
from segpipe.augment import augment_batch
from segpipe.config import TrainConfig
from segpipe.prepared import PreparedData

log = logging.getLogger(__name__)

STREAMED_SHARDS = 4  # shards read at once when streaming: their examples mix before the window shuffle


def training_dataset(prepared: PreparedData, train: TrainConfig, start_epoch: int = 0) -> tf.data.Dataset:
    """Endless augmented batches, epoch after epoch, starting at `start_epoch`.

    Every batch and its augmentation seed are fixed by `train.seed` and the epoch, so epoch k sees
    the same batches whether training started at epoch 0 or resumed at k. A train split of up to
    `train.in_memory_max_mb` is held in memory; a larger one is streamed from its shards.
    """
    steps = prepared.steps_per_epoch(train.batch_size)
    if prepared.megabytes("train") <= train.in_memory_max_mb:
        batches = _in_memory_batches(prepared, train, start_epoch)
    else:
        log.info(
            "streaming the train split from its shards (%.3g MB > train.in_memory_max_mb = %g)",
            prepared.megabytes("train"),
            train.in_memory_max_mb,
        )
        batches = _streamed_batches(prepared, train, start_epoch)
    seeds = tf.data.Dataset.random(seed=train.seed).skip(start_epoch * steps)

    def augmented(batch: tuple[tf.Tensor, tf.Tensor], seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_batch(*batch, seed, train.augment)

    return (
        tf.data.Dataset.zip(batches, seeds)
        .map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _in_memory_batches(prepared: PreparedData, train: TrainConfig, start_epoch: int) -> tf.data.Dataset:
    """Batches gathered from the split held in memory by a seeded stream of shuffled indices.

    Skipping to `start_epoch` only skips indices, so it costs no image work.
    """
    images, masks = prepared.arrays("train")
    with tf.device("/cpu:0"):
        images, masks = tf.Variable(images, trainable=False), tf.Variable(masks, trainable=False)
    count = int(images.shape[0])
    order = tf.data.Dataset.range(count).shuffle(count, seed=train.seed, reshuffle_each_iteration=True)
    indices = order.batch(train.batch_size).repeat().skip(start_epoch * prepared.steps_per_epoch(train.batch_size))
    return indices.map(lambda batch: (tf.gather(images, batch), tf.gather(masks, batch)))


def _streamed_batches(prepared: PreparedData, train: TrainConfig, start_epoch: int) -> tf.data.Dataset:
    """Batches read from the shards. Epoch e reads them in an order drawn from (train.seed, e),
    STREAMED_SHARDS at a time, and shuffles each window of `train.in_memory_max_mb` of examples
    with a seed drawn from (train.seed, e, window).

    Every draw is stateless, so epoch e is the same whether the run started at 0 or resumed at e.
    """
    shards = tf.constant([str(path) for path in prepared.shard_paths("train")])
    window = max(1, int(train.in_memory_max_mb * 2**20 // prepared.example_bytes))
    size = prepared.image_size

    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        seed = tf.stack([tf.constant(train.seed, tf.int64), number])
        order = tf.random.experimental.stateless_shuffle(shards, seed=seed)
        records = tfrecords.interleaved_records(order, min(STREAMED_SHARDS, len(prepared.shard_paths("train"))))

        def shuffled(index: tf.Tensor, records: tf.Tensor) -> tf.Tensor:
            return tf.random.experimental.stateless_shuffle(
                records, tf.random.experimental.stateless_fold_in(seed, index)
            )

        examples = records.batch(window).enumerate().map(shuffled).unbatch()
        parse = lambda record: tfrecords.parse_example(record, size)  # noqa: E731
        return examples.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(train.batch_size)

    return tf.data.Dataset.range(start_epoch, 2**62).flat_map(epoch)
