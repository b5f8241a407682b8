"""Where examples come from: a TFDS dataset (the embedded `synthetic_pets` among them) or a folder.

A source lists, per split, `Entry`s in a stable order; loading an entry returns the original
image (uint8 H×W×3 RGB) and its mask of class ids (uint8 H×W×1), or raises `DataError` naming
the file. Listed entries that are missing on disk are reported in `missing`, never dropped silently.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from segpipe import images
from segpipe.config import EMBEDDED_DATASET, DataConfig, FolderLayout
from segpipe.errors import DataError
from segpipe.synthetic_pets import SyntheticPets, config_for

log = logging.getLogger(__name__)

SOURCE_SPLITS = ("train", "test")  # what a source provides; prepare carves "val" out of "train"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-. ]*$")


@dataclass(frozen=True)
class Entry:
    name: str
    load: Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass
class Source:
    """Entries per split, the class names their masks use, and what the manifest should say."""

    description: dict[str, Any]
    class_names: tuple[str, ...]
    sizes: dict[str, int]
    entries: Callable[[str], Iterator[Entry]]
    missing: dict[str, list[str]] = field(default_factory=lambda: {split: [] for split in SOURCE_SPLITS})


def held_out_indices(size: int, fraction: float, seed: int) -> set[int]:
    """A seeded choice of round(fraction * size) of `size` indices, leaving at least one on each side."""
    count = min(size - 1, max(1, round(size * fraction)))
    return set(np.random.default_rng(seed).permutation(size)[:count].tolist())


@contextlib.contextmanager
def open_source(data: DataConfig) -> Iterator[Source]:
    """The source `data` describes, ready to read (TFDS data downloaded and prepared first)."""
    if data.source == "folder":
        yield folder_source(data)
    elif data.dataset_name == EMBEDDED_DATASET:
        # Generated afresh each time: it takes seconds and can never be a stale cache of older code.
        embedded = data.embedded
        config = config_for(
            embedded.train_examples, embedded.test_examples, embedded.min_side, embedded.max_side, embedded.seed
        )
        with tempfile.TemporaryDirectory(prefix="synthetic_pets-") as data_dir:
            with _quiet_tfds():
                builder = SyntheticPets.with_sizes(config, data_dir=data_dir, version=data.dataset_version)
                builder.download_and_prepare()
            log.info("generated %s (%s) in a temporary folder", EMBEDDED_DATASET, config.name)
            yield tfds_source(builder)
    else:
        yield tfds_source(prepared_tfds_builder(data))


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """No TFDS progress bars, INFO lines or "Downloading..." prints: a dataset generated in seconds needs none."""
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        tfds.display_progress_bar(True)
        absl_log.setLevel(level)


def prepared_tfds_builder(data: DataConfig) -> tfds.core.DatasetBuilder:
    """The TFDS builder for `data.dataset`, prepared in `data.tfds_data_dir`.

    Data already prepared there is used as it is. Otherwise the archives come from
    `data.input` when they are there, or are downloaded; if the server cannot be reached
    within `data.download_timeout` seconds, a `DataError` says what to do instead.
    """
    builder = tfds.builder(data.dataset, data_dir=data.tfds_data_dir)
    if not _is_prepared(builder):
        wanted = {info.filename: url for url, info in (builder.url_infos or {}).items()}
        absent = [name for name in sorted(wanted) if not (Path(data.input) / name).exists()]
        unreachable = _first_unreachable([wanted[name] for name in absent], data.download_timeout)
        if unreachable:
            raise DataError(
                f"{data.dataset} is not prepared in data.tfds_data_dir ({data.tfds_data_dir}) and cannot be "
                f"downloaded ({unreachable}). Either put {' and '.join(absent)} in data.input "
                f"({data.input}), or point data.tfds_data_dir at a copy where it is prepared (the folder "
                f"holding {builder.name}/{builder.version}/), or set data.source: folder with data.input at "
                f"the extracted archives, or use the embedded dataset (data.dataset: {EMBEDDED_DATASET}:1.0.0)"
            )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data.input))
    return builder


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether `builder`'s data is prepared, without TFDS's warning that its version folder has no
    dataset_info.json: that is what "not prepared" means, and the caller says what to do about it."""
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_not_the_unprepared_warning)
    try:
        return builder.is_prepared()
    finally:
        absl_log.removeFilter(_not_the_unprepared_warning)


def _not_the_unprepared_warning(record: logging.LogRecord) -> bool:
    return record.msg != "Variant folder %s has no %s"


def tfds_source(builder: tfds.core.DatasetBuilder) -> Source:
    """Entries of a prepared TFDS dataset with Oxford-style `image` and trimap `segmentation_mask`."""
    features = builder.info.features
    if "image" not in features or "segmentation_mask" not in features:
        raise DataError(f"{builder.name} has no 'image' and 'segmentation_mask' features to segment")

    def entries(split: str) -> Iterator[Entry]:
        for record in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
            name = record["file_name"].decode("utf-8") if "file_name" in record else str(record.get("id", "?"))
            yield Entry(name, partial(_trimap_pair, name, record["image"], record["segmentation_mask"]))

    return Source(
        description={
            "kind": "tfds",
            "dataset": builder.name,
            "version": str(builder.version),
            "config": builder.builder_config.name if builder.builder_config else None,
        },
        class_names=images.TRIMAP_CLASS_NAMES,
        sizes={split: _tfds_split_size(builder, split) for split in SOURCE_SPLITS},
        entries=entries,
    )


def _tfds_split_size(builder: tfds.core.DatasetBuilder, split: str) -> int:
    """The split's size from TFDS's metadata, or counted when the metadata has none (mocked data)."""
    if split in builder.info.splits:
        return builder.info.splits[split].num_examples
    return sum(1 for _ in builder.as_dataset(split=split, shuffle_files=False))


# One pair of files per example: (image, mask).
PathPairs = dict[str, list[tuple[Path, Path]]]
PairLoader = Callable[[Path, Path], tuple[np.ndarray, np.ndarray]]


def folder_source(data: DataConfig) -> Source:
    """Entries of `data.input` in the `oxford` or `masks` layout."""
    root = Path(data.input)
    if not root.is_dir():
        raise DataError(f"data.input: {root} is not a folder")
    paths, class_names, load = LAYOUTS[data.folder.layout](root, data)
    present, missing = {}, {}
    for split in SOURCE_SPLITS:
        present[split] = [(i, m) for i, m in paths[split] if i.is_file() and m.is_file()]
        missing[split] = [i.name for i, m in paths[split] if not (i.is_file() and m.is_file())]
        if missing[split]:
            shown = ", ".join(missing[split][:10])
            log.warning("%s: %d listed %s entries are missing on disk: %s", root, len(missing[split]), split, shown)

    def entries(split: str) -> Iterator[Entry]:
        for image_path, mask_path in present[split]:
            yield Entry(image_path.name, partial(load, image_path, mask_path))

    return Source(
        description={"kind": "folder", "layout": data.folder.layout, "path": str(root)},
        class_names=class_names,
        sizes={split: len(present[split]) for split in SOURCE_SPLITS},
        entries=entries,
        missing=missing,
    )


def _oxford_layout(root: Path, data: DataConfig) -> tuple[PathPairs, tuple[str, ...], PairLoader]:
    """images/NAME.jpg and annotations/trimaps/NAME.png, split by annotations/{trainval,test}.txt."""
    paths = {}
    for split, list_name in (("train", "trainval"), ("test", "test")):
        names = _oxford_list(root / "annotations" / f"{list_name}.txt")
        paths[split] = [(root / "images" / f"{n}.jpg", root / "annotations" / "trimaps" / f"{n}.png") for n in names]
    return paths, images.TRIMAP_CLASS_NAMES, partial(_oxford_pair, root=root, max_pixels=data.max_image_pixels)


def _masks_layout(root: Path, data: DataConfig) -> tuple[PathPairs, tuple[str, ...], PairLoader]:
    """images/NAME.(jpg|png) and masks/NAME.png; a seeded share of them is the test split."""
    pairs = _masks_pairs(root)
    test = held_out_indices(len(pairs), data.folder.test_fraction, data.split_seed) if len(pairs) > 1 else set()
    paths = {
        "train": [pair for i, pair in enumerate(pairs) if i not in test],
        "test": [pair for i, pair in enumerate(pairs) if i in test],
    }
    class_names = tuple(data.folder.class_names)
    load = partial(_masks_pair, root=root, max_pixels=data.max_image_pixels, num_classes=len(class_names))
    return paths, class_names, load


LAYOUTS: dict[FolderLayout, Callable[[Path, DataConfig], tuple[PathPairs, tuple[str, ...], PairLoader]]] = {
    "oxford": _oxford_layout,
    "masks": _masks_layout,
}


def _trimap_pair(name: str, image: np.ndarray, trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return images.checked_pair(name, image, images.trimap_to_classes(trimap, name), len(images.TRIMAP_CLASS_NAMES))


def _oxford_pair(image_path: Path, trimap_path: Path, root: Path, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    image, trimap = images.read_pair(_inside(root, image_path), _inside(root, trimap_path), max_pixels)
    return _trimap_pair(str(image_path), image, trimap)


def _masks_pair(
    image_path: Path, mask_path: Path, root: Path, max_pixels: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    image, mask = images.read_pair(_inside(root, image_path), _inside(root, mask_path), max_pixels)
    return images.checked_pair(str(image_path), image, mask, num_classes)


def _inside(root: Path, path: Path) -> Path:
    """`path`, if it really is inside `root`: a symlink to elsewhere is refused (its pixels could end up in plots)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise DataError(f"{path}: a link to {path.resolve()}, outside {root}: refused")
    return path


def _oxford_list(path: Path) -> list[str]:
    """Names from an Oxford split list (lines `NAME CLASS_ID SPECIES BREED_ID`, `#` comments)."""
    if not path.is_file():
        raise DataError(f"{path}: split list not found (the oxford layout needs annotations/trainval.txt and test.txt)")
    names = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(_safe_name(line.split()[0], f"{path}:{number}"))
    return names


def _masks_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths for every image in `images/`, sorted by name; masks are `masks/NAME.png`."""
    if not (root / "images").is_dir():
        raise DataError(f"{root}: the masks layout needs an images/ folder (and masks/)")
    # Hidden files (`.DS_Store`, macOS's `._NAME.jpg`) are not images of the set; any other name is.
    found = sorted(
        p
        for p in (root / "images").iterdir()
        if p.suffix.lower() in images.IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    stems = [p.stem for p in found]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise DataError(f"{root / 'images'}: several images share the name {duplicates[0]!r}")
    return [(p, root / "masks" / f"{p.stem}.png") for p in found]


def _safe_name(name: str, where: str) -> str:
    """Refuse names that could lead outside the dataset folder (`../x`, `/etc/x`, hidden files)."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise DataError(f"{where}: refusing entry name {name!r} (letters, digits, '_', '-', '.', ' ' only)")
    return name


def _first_unreachable(urls: list[str], timeout: float) -> str | None:
    """Why the first unreachable URL's host can't be reached within `timeout` seconds, or None."""
    for url in urls:
        problem = _unreachable(url, timeout)
        if problem:
            return problem
    return None


def _unreachable(url: str, timeout: float) -> str | None:
    """Why `url`'s host can't be connected to within `timeout` seconds, or None if it can."""
    parts = urllib.parse.urlsplit(url)
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    outcome: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append("")
        except OSError as error:
            outcome.append(f"{parts.hostname}: {error}")

    # getaddrinfo ignores socket timeouts, so the attempt runs in a thread we stop waiting for.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return outcome[0] or None if outcome else f"{parts.hostname}: no answer within {timeout:g} s"
