"""train.mixed_precision (precision.py): each choice is a Keras dtype policy, and auto is what this machine
computes fastest."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from segpipe import precision
from segpipe.config import MixedPrecision
from segpipe.precision import cpu_has_native_bfloat16, precision_policy
from segpipe.typed import choices


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu avx2 avx512f avx512_bf16", True),
        ("fpu avx2 amx_bf16 amx_tile", True),
        ("fp asimd bf16 i8mm", True),  # Arm's Features line
        ("fpu avx2 avx512f avx512_vnni", False),
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_native_bfloat16(cpuinfo) is native


def test_onednn_capped_at_avx2_has_no_native_bfloat16(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu_has_native_bfloat16(cpuinfo) is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu_has_native_bfloat16(cpuinfo) is True


def test_a_machine_without_cpu_flags_has_no_native_bfloat16(tmp_path):
    assert cpu_has_native_bfloat16(tmp_path / "absent") is False


def test_each_explicit_choice_names_its_keras_policy():
    assert [precision_policy(choice) for choice in ("off", "float16", "bfloat16")] == [
        "float32",
        "mixed_float16",
        "mixed_bfloat16",
    ]


@pytest.mark.parametrize(
    ("gpus", "capability", "native_bfloat16", "policy"),
    [
        (["GPU:0"], (8, 0), False, "mixed_float16"),
        (["GPU:0"], (6, 1), True, "float32"),  # float16 is slow there, and the model runs on the GPU, not the CPU
        (["GPU:0"], None, True, "float32"),  # a GPU that does not say its compute capability
        ([], None, True, "mixed_bfloat16"),
        ([], None, False, "float32"),
    ],
    ids=["gpu-7.0+", "gpu-6.1", "gpu-unknown", "cpu-bf16", "cpu"],
)
def test_auto_is_the_policy_this_machine_computes_fastest(monkeypatch, gpus, capability, native_bfloat16, policy):
    details = {"compute_capability": capability} if capability else {}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: native_bfloat16)
    assert precision_policy("auto") == policy


def test_every_choice_of_train_mixed_precision_stands_for_a_keras_dtype_policy():
    for choice in choices(MixedPrecision):
        assert keras.DTypePolicy(precision_policy(choice)).name == precision_policy(choice)
