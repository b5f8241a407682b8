"""Every place the pipeline relies on Keras or TensorFlow beyond their documented API, in one module.

Each workaround names what it works around and the versions it was checked on. On another Keras version a
warning says so at import; tests/test_keras_workarounds.py fails loudly when a private name used here is
gone. Re-check each one when upgrading Keras or TensorFlow (requirements/runtime.in pins the tested versions).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import keras
import tensorflow as tf

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
