"""Mixed precision: which Keras dtype policy `train.mixed_precision` stands for on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

from segpipe.config import MixedPrecision, Precision

# Keras dtype policies: "mixed" ones compute in the named type and keep weights in float32.
PRECISION_POLICIES: dict[Precision, str] = {
    "off": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}


def precision_policy(choice: MixedPrecision) -> str:
    """The Keras dtype policy `train.mixed_precision` stands for on this machine."""
    return PRECISION_POLICIES[native_mixed_precision() if choice == "auto" else choice]


def native_mixed_precision() -> Precision:
    """float16 on a GPU with fast float16 (compute capability 7.0+), bfloat16 on a CPU with native
    bfloat16 instructions, otherwise off (emulated half precision is slower than float32)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
        return "float16" if tuple(capability) >= (7, 0) else "off"
    return "bfloat16" if cpu_has_native_bfloat16() else "off"


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) under which it computes bfloat16 by emulation.
_ISAS_WITHOUT_BFLOAT16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags (Linux) include AVX512_BF16 or AMX-BF16 (x86) or BF16 (Arm), and oneDNN
    is not capped below them by ONEDNN_MAX_CPU_ISA (docs/reproducibility.md)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in _ISAS_WITHOUT_BFLOAT16:
        return False
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
