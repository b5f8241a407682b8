"""segpipe: a reproducible U-Net segmentation pipeline (TensorFlow/Keras + DVC)."""

import os

# TensorFlow's C++ runtime logs INFO and WARNING lines (buffer sizes, grappler, cancelled optimization loops)
# that are not ours to act on; its errors stay visible. This must be set before TensorFlow is imported; a value
# set in the environment wins (TF_CPP_MIN_LOG_LEVEL=0 shows everything). The lines TensorFlow writes while it
# loads ignore it: stages and the command line filter those (quiet.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
