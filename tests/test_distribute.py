"""train.distribute: a mirrored strategy splits the global batch over devices and trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

# Logical devices must be set before TensorFlow starts, so the check runs in a fresh interpreter.
SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf, yaml
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from segpipe.config import params_from_dict
from segpipe.model import build_unet
from segpipe.training import compile_model, distribution_strategy

raw = yaml.safe_load(open(sys.argv[1]))
raw["model"].update(depth=1, base_filters=4)
raw["train"].update(distribute="mirrored", lr_schedule="constant", jit_compile=False)  # XLA cannot span logical CPUs
params = params_from_dict(raw)
strategy = distribution_strategy(params.train.distribute)
with strategy.scope():
    model = build_unet(16, 3, params.model, {"scale": 1 / 255, "offset": 0.0})
    compile_model(model, 3, params.train, steps_per_epoch=2)
before = [w.numpy().copy() for w in model.trainable_weights]
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(8, 16, 16, 3)).astype("float32")
masks = rng.integers(0, 3, size=(8, 16, 16, 1)).astype("uint8")
history = model.fit(tf.data.Dataset.from_tensor_slices((images, masks)).batch(4), epochs=1, steps_per_epoch=2, verbose=0)
changed = [not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights)]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"][-1], "changed": sum(changed), "weights": len(changed)}))
"""


def test_mirrored_strategy_over_two_cpu_devices_trains_two_steps():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "params.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["replicas"] == 2
    assert 0.0 < outcome["loss"] < 100.0
    assert outcome["changed"] == outcome["weights"]
