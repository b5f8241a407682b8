"""Atomic output: every file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import csv
import functools
import glob
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from segpipe.errors import PipelineError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The file is flushed to disk before the rename, and the rename before returning, so that a
    power cut leaves the old file or the new one, never an empty one under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path, stamp: str) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; swap it in for `path` if the block succeeds.

    An existing `path` is replaced only if it holds `stamp`, the file this pipeline writes into
    every such folder: a folder of someone else's is refused, never deleted.
    """
    path = Path(path)
    refuse_unstamped_dir(str(path), path, stamp)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.with_name(f".{path.name}.old")
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        for file in (p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
        _fsync(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def refuse_unstamped_dir(key: str, path: Path, stamp: str) -> None:
    """Refuse a folder output `path` that exists, is not empty and lacks `stamp`, the file this pipeline
    writes into every such folder: a folder of someone else's is refused, never replaced."""
    if path.exists() and not (path / stamp).is_file() and (path.is_file() or any(path.iterdir())):
        where = key if key == str(path) else f"{key} ({path})"
        raise PipelineError(
            f"{where} exists and was not written by this pipeline (it has no {stamp}): "
            "move it away or choose another path"
        )


@dataclass(frozen=True)
class FileShape:
    """What a file output is like when the pipeline wrote it: `fits(path)` tells, `described` says it in errors."""

    fits: Callable[[Path], bool]
    described: str


def refuse_unowned(key: str, path: Path, shape: FileShape) -> None:
    """Refuse, before any work, to replace a file the pipeline did not write: an existing output `path`
    (param `key`) must be listed as an output in the project's dvc.lock or have the `shape` of that output."""
    if path.is_dir():
        raise PipelineError(f"{key} ({path}) is a folder, not a file this pipeline wrote: choose another path")
    if path.exists() and not (_listed_in_dvc_lock(path) or _fits(shape, path)):
        raise PipelineError(
            f"{key} ({path}) exists and was not written by this pipeline (not an output in dvc.lock, not a "
            f"{shape.described}): move it away or choose another path"
        )


def _listed_in_dvc_lock(path: Path) -> bool:
    lock = Path("dvc.lock")
    try:
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return False
    target = path.resolve()
    return any(
        Path(str(out.get("path"))).resolve() == target
        for stage in stages.values()
        if isinstance(stage, dict)
        for out in stage.get("outs", []) or []
        if isinstance(out, dict)
    )


def _fits(shape: FileShape, path: Path) -> bool:
    try:
        return shape.fits(path)
    except (OSError, ValueError, UnicodeDecodeError, zipfile.BadZipFile):
        return False


def json_with_keys(keys: Collection[str]) -> FileShape:
    """Canonical JSON (as `write_json` writes it) of an object holding at least `keys`."""
    return FileShape(
        functools.partial(_canonical_json_with, keys=frozenset(keys)),
        f"JSON file (sorted keys, 2-space indent) with the keys {','.join(sorted(keys))}",
    )


def _canonical_json_with(path: Path, keys: frozenset[str]) -> bool:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    return text == _json_text(data) and isinstance(data, dict) and keys <= data.keys()


def csv_with_columns(columns: Sequence[str]) -> FileShape:
    """A CSV as `write_csv` writes it, headed by exactly `columns`."""
    return csv_headed_by(lambda header: header == list(columns), ",".join(columns))


def csv_headed_by(fits_header: Callable[[list[str]], bool], columns: str) -> FileShape:
    """A CSV as `write_csv` writes it whose header row `fits_header`; `columns` describes that header."""
    fits = functools.partial(_canonical_csv_headed_by, fits_header=fits_header)
    return FileShape(fits, f"CSV with the columns {columns}")


def _canonical_csv_headed_by(path: Path, fits_header: Callable[[list[str]], bool]) -> bool:
    text = path.read_bytes().decode("utf-8")  # as written: the csv module ends rows with \r\n
    rows = list(csv.reader(io.StringIO(text, newline="")))
    written = io.StringIO(newline="")
    csv.writer(written).writerows(rows)
    return bool(rows) and fits_header(rows[0]) and written.getvalue() == text


def _stamped_png(path: Path) -> bool:
    from PIL import Image  # here: only a PNG output needs it

    with Image.open(path) as image:
        return image.format == "PNG" and image.info.get("Software") == PNG_SOFTWARE


def _stamped_jpeg(path: Path) -> bool:
    from PIL import Image  # here: only a JPEG output needs it

    with Image.open(path) as image:
        return image.format == "JPEG" and image.info.get("comment") == PNG_SOFTWARE.encode()


def keras_archive_holding(card: str) -> FileShape:
    """A Keras model archive that holds the file `card`, which Keras does not write but the pipeline does."""
    return FileShape(functools.partial(_keras_archive_holding, card=card), f"Keras model archive holding {card}")


def _keras_archive_holding(path: Path, card: str) -> bool:
    with zipfile.ZipFile(path) as archive:
        return {"config.json", "metadata.json", card} <= set(archive.namelist())


# The Software text of every PNG (the comment of every JPEG) the pipeline writes: how it knows its own images.
PNG_SOFTWARE = "segpipe"
STAMPED_PNG = FileShape(_stamped_png, f"PNG stamped Software={PNG_SOFTWARE}")
STAMPED_JPEG = FileShape(_stamped_jpeg, f"JPEG with the comment {PNG_SOFTWARE}")


def sweep_leftovers(path: Path) -> None:
    """Remove what a killed writer of `path` left beside it: only our own temporary names."""
    name = glob.escape(path.name)
    for pattern in (f".{name}.*.tmp", f".{name}.*.tmp.*", f".{name}.old"):
        for leftover in path.parent.glob(pattern):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    """Pretty, key-sorted JSON, so equal data gives equal bytes."""
    write_text(path, _json_text(data))


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rows with equal keys as CSV (header from the first row's keys)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
