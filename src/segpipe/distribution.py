"""Training on several devices or machines: the strategy `train.distribute` picks, which process
writes the outputs and how data is split between workers (the fixes Keras needs under
`MultiWorkerMirroredStrategy` are in keras_workarounds.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable

import tensorflow as tf

from segpipe.cluster import cluster_from_environment, wait_for_the_others
from segpipe.config import Distribute, TrainConfig
from segpipe.errors import ConfigError
from segpipe.keras_workarounds import MultiWorkerMirroredStrategy
from segpipe.prepared import PreparedData


def _cluster_or_local_gpus(train: TrainConfig) -> tf.distribute.Strategy:
    cluster = cluster_from_environment()
    if cluster is None:
        return _all_local_devices(train) if len(tf.config.list_logical_devices("GPU")) > 1 else _default(train)
    wait_for_the_others(cluster, train.cluster_timeout)
    strategy = MultiWorkerMirroredStrategy()
    # TensorFlow's coordination agent has just replaced the SIGTERM handler with one that only records a
    # preemption notice (for a PreemptionCheckpointHandler, unused here): `kill` would not stop training.
    # Put back the one Python knows (runner's clean stop, or the default, which ends the process).
    if signal.getsignal(signal.SIGTERM) is not None:
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))
    return strategy


def _all_local_devices(train: TrainConfig) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy(
        devices=[device.name for device in gpus or tf.config.list_logical_devices("CPU")]
    )


def _default(train: TrainConfig) -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


STRATEGIES: dict[Distribute, Callable[[TrainConfig], tf.distribute.Strategy]] = {
    "auto": _cluster_or_local_gpus,
    "mirrored": _all_local_devices,
    "none": _default,
}


def distribution_strategy(train: TrainConfig) -> tf.distribute.Strategy:
    """The strategy `train.distribute` asks for (see params.yaml).

    A `MultiWorkerMirroredStrategy` (auto with a `TF_CONFIG` cluster) must be created before
    TensorFlow starts its runtime, and only once: call this first, then pass it to `train_model`.
    It is created once every other worker is up: after `train.cluster_timeout` seconds without
    one, a `PipelineError` names those missing (`cluster.wait_for_the_others`).
    """
    return STRATEGIES[train.distribute](train)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: true unless it is one of the other workers of a
    `TF_CONFIG` cluster, whose chief is its `chief` task if it has one, else worker 0 (TensorFlow's rule)."""
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return True
    if "chief" in resolver.cluster_spec().jobs:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def sharded_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with auto-sharding by data, for a multi-worker strategy (no effect otherwise).

    The strategy splits each batch of `train.batch_size` into one slice per worker; every worker runs
    the same seeded pipeline and keeps only its slice, so the workers see different examples and
    together the whole batch. The default (AUTO) shards by FILE where it can: the train split (indices
    into memory) has no files and falls back to DATA, but the validation shards would be dealt out by
    file, which fails with fewer files than workers and gives workers different numbers of batches
    when the files hold uneven counts.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def check_every_replica_gets_examples(prepared: PreparedData, batch_size: int, replicas: int) -> None:
    """Refuse a batch size that would leave a replica of a multi-worker run without examples in some step.

    Each batch is split between the replicas; a batch, or the last (partial) batch of the train or
    validation split, smaller than the number of replicas gives some of them an empty slice, on which
    TensorFlow's collectives fail.
    """
    for split in ("train", "val"):
        count = prepared.count(split)
        smallest = count % batch_size or batch_size  # the last batch
        if count and smallest < replicas:
            raise ConfigError(
                f"train.batch_size {batch_size} leaves some of the {replicas} replicas without examples: the "
                f"{split} split ({count} examples) ends with a batch of {smallest}; choose a batch size whose "
                f"last batches of train and val have at least {replicas} examples"
            )
