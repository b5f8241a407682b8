"""Tiny on-disk datasets, made by the tests, in the layouts and file quirks of real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford_iiit_pet_sample"
RED = (200, 30, 30)


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
