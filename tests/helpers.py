"""What the tests share: the tiny configuration, running scripts, and tiny on-disk datasets in the
layouts and file quirks of real data."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from segpipe import tfrecords
from segpipe.prepared import SPLITS, STORAGE, Normalization, PreparedData, Split, Splits

ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "oxford_iiit_pet_sample"
RED = (200, 30, 30)

# Small enough that the whole pipeline runs in well under a minute on two CPU cores.
TINY = {
    "data": {
        "image_size": 32,
        "shard_size": 8,
        "embedded": {"train_examples": 24, "test_examples": 8, "min_side": 40, "max_side": 56, "seed": 0},
    },
    "model": {"depth": 2, "base_filters": 4},
    "train": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8},
    "evaluate": {"batch_size": 8},
    "visualize": {"num_examples": 2, "dpi": 40},
}


def merged(base: dict, changes: dict) -> dict:
    """A deep copy of `base` with the nested `changes` applied."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        result[key] = merged(result.get(key, {}), value) if isinstance(value, dict) else value
    return result


def script_env() -> dict[str, str]:
    """The environment in which a script runs this checkout's code with this interpreter's packages."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def run_script(script: str, cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `script` (a path below the project root, e.g. `stages/train.py`) in `cwd`; its output captured."""
    command = [sys.executable, str(ROOT / script), *args]
    return subprocess.run(command, cwd=cwd, env=script_env(), capture_output=True, text=True, timeout=timeout)


def start_script(script: str, cwd: Path) -> subprocess.Popen:
    """Start `script` like `run_script`, without waiting and with its output discarded."""
    command = [sys.executable, str(ROOT / script)]
    return subprocess.Popen(command, cwd=cwd, env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def split_counts(prepared: PreparedData) -> dict[str, int]:
    return {split: prepared.count(split) for split in SPLITS}


def write_tiny_prepared(folder: Path, per_split: int = 1) -> PreparedData:
    """Random 8×8 images with all-zero masks, `per_split` per split, in shards of two, and the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    splits = {}
    for split in SPLITS:
        records = [
            tfrecords.serialize_example(
                rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.zeros((8, 8, 1), np.uint8), f"{i}"
            )
            for i in range(per_split)
        ]
        written, shards = tfrecords.write_shards(folder, split, records, shard_size=2)
        splits[split] = Split(examples=written, shards=tuple(shards))
    prepared = PreparedData(
        folder=folder,
        source={"kind": "test"},
        image_size=8,
        class_names=("pet", "background", "border"),
        normalization=Normalization(scale=1.0, offset=0.0),
        storage=STORAGE,
        splits=Splits(**splits),
        missing={},
        skipped={},
    )
    prepared.save_manifest()
    return prepared


def trimap(height: int, width: int) -> np.ndarray:
    """A pet square (1) with a border ring (3) on background (2)."""
    mask = np.full((height, width), 2, dtype=np.uint8)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 3
    mask[height // 4 + 2 : 3 * height // 4 - 2, width // 4 + 2 : 3 * width // 4 - 2] = 1
    return mask


def save_image(path: Path, mode: str, size: tuple[int, int] = (24, 20)) -> None:
    """A flat red image saved in `mode`, in the format its mode calls for, whatever `path`'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, RED)
    formats = {"RGB": "JPEG", "L": "JPEG", "CMYK": "JPEG", "RGBA": "PNG", "P": "PNG", "GIF": "GIF"}
    if mode == "GIF":
        image.convert("P").save(path, format="GIF")
    else:
        image.convert(mode).save(path, format=formats[mode], quality=95)


def write_oxford_folder(
    root: Path, train: dict[str, str], test: dict[str, str], absent: tuple[str, ...] = (), comment: bool = True
) -> Path:
    """Oxford archive layout: images/NAME.jpg in the given modes, trimaps, split lists naming `absent` too.

    `comment` starts each list with a `#` line, as list.txt does (TFDS's own builder cannot read those).
    """
    (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    for split_file, entries in (("trainval.txt", train), ("test.txt", test)):
        lines = ["# NAME CLASS_ID SPECIES BREED_ID"] if comment else []
        for name, mode in entries.items():
            save_image(root / "images" / f"{name}.jpg", mode)
            Image.fromarray(trimap(20, 24)).save(root / "annotations" / "trimaps" / f"{name}.png")
            lines.append(f"{name} 1 1 1")
        if split_file == "trainval.txt":
            lines += [f"{name} 1 1 1" for name in absent]
        (root / "annotations" / split_file).write_text("\n".join(lines) + "\n")
    return root


def write_masks_folder(root: Path, count: int, num_classes: int, size: int = 20) -> Path:
    """masks layout: images/NAME.png and masks/NAME.png with vertical stripes of every class id."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    stripes = (np.arange(size) * num_classes // size).astype(np.uint8)
    mask = np.tile(stripes, (size, 1))
    for index in range(count):
        colours = (mask * (255 // num_classes)).astype(np.uint8)
        Image.fromarray(np.stack([colours, 255 - colours, colours], axis=-1)).save(root / "images" / f"img_{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"img_{index}.png")
    return root
