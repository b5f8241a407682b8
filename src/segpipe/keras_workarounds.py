"""Every place the pipeline relies on Keras or TensorFlow beyond their documented API, in one module.

Each workaround names what it works around and the versions it was checked on. On another Keras version a
warning says so at import; tests/test_keras_workarounds.py fails loudly when a private name used here is
gone. Re-check each one when upgrading Keras or TensorFlow (requirements/runtime.in pins the tested versions).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from keras.src.backend import config as keras_backend_config
from keras.src.utils import file_utils

log = logging.getLogger(__name__)

TESTED_KERAS = ("3.15.1",)  # the Keras versions every workaround below was checked on

if keras.__version__ not in TESTED_KERAS:
    log.warning(
        "Keras %s is not a version segpipe was tested with (%s): its Keras workarounds may no longer hold "
        "(src/segpipe/keras_workarounds.py)",
        keras.__version__,
        ", ".join(TESTED_KERAS),
    )


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` as Keras 3.15 calls it (keras-team/keras#20585: `fit` fails under it):
    after each step, `fit` averages the step's logs, scalars, with `reduce("MEAN", value, axis=0)`, which is
    invalid for a scalar. Such a value is averaged across replicas only, as Keras does under `MirroredStrategy`."""

    def reduce(self, reduce_op, value, axis):
        if axis is not None and self.experimental_local_results(value)[0].shape.rank == 0:
            axis = None
        return super().reduce(reduce_op, value, axis)


def build_from_specs(model: keras.Model, strategy: tf.distribute.Strategy, specs: tuple[tf.TensorSpec, ...]) -> None:
    """Work around keras-team/keras#20585 (Keras 3.15): before their first step, `fit` and `evaluate` draw a
    batch and pass the whole (images, masks) pair to `Strategy.reduce`, only to learn the shapes from which
    to build the metrics and the optimizer; `MultiWorkerMirroredStrategy.reduce` takes one tensor, not a
    pair, and fails. Build from the dataset's element specs instead (the private `Model._symbolic_build`):
    same shapes, no collective, and no batch drawn (which would also have moved the seeded shuffle on)."""
    build = model._symbolic_build

    def maybe_symbolic_build(iterator=None, data_batch=None) -> None:
        with strategy.scope():
            build(data_batch=specs)

    model._maybe_symbolic_build = maybe_symbolic_build


def per_replica_loss(batch_loss):
    """A loss of the whole (per-replica) batch as Keras needs it from each of N replicas: divided by N.

    Keras sums the replicas' gradients and multiplies the logged loss by N; it divides per-example losses by
    N itself, but not a loss that is already one number (keras-team/keras#16285: the loss of N replicas is
    1/N or N times too large). With one replica, unchanged. Reads the active strategy, as Keras's own
    reduction does.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return batch_loss / replicas if replicas > 1 else batch_loss


@contextlib.contextmanager
def layer_dtype_policy(name: str) -> Iterator[None]:
    """Layers created inside take the dtype policy `name`: Keras reads its global policy when a layer is made
    and the functional API has no per-model policy, so the global one is set for the build and put back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@dataclass(frozen=True)
class Download:
    path: Path  # where Keras keeps (or would keep) the file
    origin: str  # where Keras downloads it from


@contextlib.contextmanager
def recorded_downloads() -> Iterator[list[Download]]:
    """Record every file `keras.applications` asks for inside: they fetch ImageNet weights with
    `keras.src.utils.file_utils.get_file` (keras 3.15.1), which names neither the file nor the folder when a
    download fails. The folder is worked out as get_file does: `cache_dir` (default KERAS_HOME, else ~/.keras),
    or /tmp/.keras when that is not writable, then `cache_subdir`."""
    wanted: list[Download] = []
    get_file = file_utils.get_file

    def recording_get_file(fname=None, origin=None, *args, cache_dir=None, cache_subdir="datasets", **kwargs):
        base = os.path.expanduser(cache_dir or keras_backend_config.keras_home())
        if not os.access(base, os.W_OK):
            base = os.path.join("/tmp", ".keras")
        wanted.append(Download(Path(base) / cache_subdir / str(fname), str(origin)))
        return get_file(fname, origin, *args, cache_dir=cache_dir, cache_subdir=cache_subdir, **kwargs)

    file_utils.get_file = recording_get_file
    try:
        yield wanted
    finally:
        file_utils.get_file = get_file
