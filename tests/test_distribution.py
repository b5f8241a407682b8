"""train.distribute (distribution.py): a mirrored strategy splits the global batch over devices and trains, and
a batch size that leaves a replica without examples is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from segpipe.distribution import check_every_replica_gets_examples
from segpipe.errors import ConfigError
from tests.helpers import ROOT, script_env, write_tiny_prepared

# Logical devices must be set before TensorFlow starts, so the check runs in a fresh interpreter.
SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf, yaml
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from segpipe.config import params_from_dict
from segpipe.model import build_unet
from segpipe.prepared import Normalization
from segpipe.distribution import distribution_strategy
from segpipe.optimization import compile_model

raw = yaml.safe_load(open(sys.argv[1]))
raw["model"].update(depth=1, base_filters=4)
raw["train"].update(distribute="mirrored", lr_schedule="constant", jit_compile=False)  # XLA cannot span logical CPUs
params = params_from_dict(raw)
strategy = distribution_strategy(params.train)
with strategy.scope():
    model = build_unet(16, 3, params.model, Normalization(scale=1 / 255, offset=0.0))
    compile_model(model, 3, params.train, steps_per_epoch=2)
before = [w.numpy().copy() for w in model.trainable_weights]
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(8, 16, 16, 3)).astype("float32")
masks = rng.integers(0, 3, size=(8, 16, 16, 1)).astype("uint8")
batches = tf.data.Dataset.from_tensor_slices((images, masks)).batch(4)
history = model.fit(batches, epochs=1, steps_per_epoch=2, verbose=0)
changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights, strict=True)]
loss = history.history["loss"][-1]
outcome = {"replicas": strategy.num_replicas_in_sync, "loss": loss, "changed": sum(changed), "weights": len(changed)}
print(json.dumps(outcome))
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_devices_trains_two_steps():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "params.yaml")],
        capture_output=True,
        text=True,
        env=script_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2
    assert 0.0 < outcome["loss"] < 100.0
    assert outcome["changed"] == outcome["weights"]


def test_a_batch_size_that_leaves_a_replica_without_examples_is_refused(tmp_path):
    prepared = write_tiny_prepared(tmp_path, per_split=9)  # 9 = 8 + 1: the last batch of 8 has one example
    check_every_replica_gets_examples(prepared, batch_size=3, replicas=2)
    with pytest.raises(ConfigError, match=r"train split \(9 examples\) ends with a batch of 1"):
        check_every_replica_gets_examples(prepared, batch_size=8, replicas=2)
