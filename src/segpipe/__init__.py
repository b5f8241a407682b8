"""segpipe: a reproducible U-Net segmentation pipeline (TensorFlow/Keras + DVC)."""

import os

# TensorFlow's C++ runtime logs INFO and WARNING lines (buffer sizes, grappler, cancelled
# optimization loops) that are not ours to act on; without an NVIDIA driver it also logs a
# failed `cuInit` as an ERROR on every start. This must be set before TensorFlow is imported;
# a value set in the environment wins (TF_CPP_MIN_LOG_LEVEL=0 shows everything).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/proc/driver/nvidia/version") else "3")
