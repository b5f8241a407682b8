"""Atomic output: every file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    if path.exists() and not (path / stamp).exists() and (path.is_file() or any(path.iterdir())):
        raise PipelineError(
            f"{path} exists and was not written by this pipeline (it has no {stamp}): "
            "move it away or choose another path"
        )
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
    write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Rows with equal keys as CSV (header from the first row's keys)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
