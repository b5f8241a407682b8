"""What the tests share: the tiny configuration and params, running scripts, free ports, and tiny on-disk
datasets in the layouts and file quirks of real data."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from segpipe import tfrecords
from segpipe.config import DataConfig, Params, params_from_dict
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
    "train": {"epochs": 1, "batch_size": 8},  # the default warm-up, capped at 0 epochs
    "evaluate": {"batch_size": 8},
    "visualize": {"num_examples": 2, "dpi": 40},
}


def merged(base: dict, changes: dict) -> dict:
    """A deep copy of `base` with the nested `changes` applied."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        result[key] = merged(result.get(key, {}), value) if isinstance(value, dict) else value
    return result


def params_with(changes: dict) -> Params:
    """The project's params.yaml with the nested `changes` applied, typed but not yet validated."""
    return params_from_dict(merged(yaml.safe_load((ROOT / "params.yaml").read_text()), changes))


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


def signalled_when_ready(run: subprocess.Popen, wait_until_ready: Callable[[], None], sig: int) -> int:
    """Send `sig` to the process `run` once `wait_until_ready()` returns; its exit code. It never outlives this."""
    try:
        wait_until_ready()
        run.send_signal(sig)
        return run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/plots",
    "stages",
    "src",
    "data/input",
    "models/pretrained",
]


class Repo:
    """A copy of the project in a git repository, driven through git and DVC's command lines."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {
            **os.environ,
            # Stage commands must run the copy's code with this interpreter's packages.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(root / "src"),
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }

    def run(self, *args: str) -> str:
        result = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def dvc(self, *args: str) -> str:
        return self.run(str(Path(sys.executable).parent / "dvc"), *args)

    def repro(self) -> set[str]:
        """Run `dvc repro` and return the names of the stages it ran."""
        return set(re.findall(r"Running stage '(\w+)'", self.dvc("repro")))

    def set_params(self, changes: dict) -> None:
        path = self.root / "params.yaml"
        path.write_text(yaml.safe_dump(merged(yaml.safe_load(path.read_text()), changes), sort_keys=False))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)

    def reset(self) -> None:
        """Back to the last commit: params, committed metrics, and DVC-tracked outputs."""
        self.run("git", "reset", "-q", "--hard")
        self.dvc("checkout", "--force")

    def copy(self, target: Path) -> Repo:
        """This repository copied to `target`: workspace, git history and DVC cache (not DVC's transient
        .dvc/tmp: locks, and file hashes it recomputes)."""
        shutil.copytree(
            self.root, target, ignore=lambda folder, _: ["tmp"] if Path(folder) == self.root / ".dvc" else []
        )
        return Repo(target)


def tiny_project(root: Path) -> Repo:
    """The project's pipeline files copied to `root`, with the tiny params, in a git repository
    with one commit (DVCLive needs a commit to exist)."""
    for name in PROJECT_FILES:
        source = ROOT / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, root / name)
    repo = Repo(root)
    repo.run("git", "init", "-q", "-b", "main")
    repo.set_params(TINY)
    repo.commit("tiny pipeline")
    return repo


def split_counts(prepared: PreparedData) -> dict[str, int]:
    return {split: prepared.count(split) for split in SPLITS}


def write_tiny_prepared(folder: Path, per_split: int = 1, size: int = 8) -> PreparedData:
    """Random `size`×`size` images (8 unless told) with all-zero masks, `per_split` per split, in shards of two,
    and the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    splits = {}
    for split in SPLITS:
        records = [
            tfrecords.serialize_example(
                rng.integers(0, 256, (size, size, 3), dtype=np.uint8), np.zeros((size, size, 1), np.uint8), f"{i}"
            )
            for i in range(per_split)
        ]
        written, shards = tfrecords.write_shards(folder, split, records, shard_size=2)
        splits[split] = Split(count=written, shards=tuple(shards))
    prepared = PreparedData(
        folder=folder,
        source={"kind": "test"},
        image_size=size,
        class_names=("pet", "background", "border"),
        normalization=Normalization(scale=1.0, offset=0.0),
        storage=STORAGE,
        splits=Splits(**splits),
        missing={},
        skipped={},
    )
    prepared.save_manifest()
    return prepared


def random_examples(count: int, size: int):
    """`count` random `size`×`size` images with masks of class ids 0..2, named img_0.png, img_1.png, ..."""
    rng = np.random.default_rng(1)
    for index in range(count):
        image = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        mask = rng.integers(0, 3, size=(size, size, 1), dtype=np.uint8)
        yield image, mask, f"img_{index}.png"


def prepared_test_split(tmp_path: Path, originals, size: int, shard_size: int) -> PreparedData:
    """Tiny prepared data whose test split holds `originals`, in shards of `shard_size`."""
    base = write_tiny_prepared(tmp_path / "prepared")
    records = (tfrecords.serialize_example(*example) for example in originals)
    written, names = tfrecords.write_shards(base.folder, "test", records, shard_size)
    splits = dataclasses.replace(base.splits, test=Split(count=written, shards=tuple(names)))
    return dataclasses.replace(base, image_size=size, splits=splits)


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


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG file whose header claims `width`×`height` pixels but that holds no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# Every image mode the real archives hold (PNG and GIF data behind .jpg names included), by a name for the file.
QUIRKY = {"rgb": "RGB", "gray": "L", "cmyk": "CMYK", "rgba_png": "RGBA", "palette_png": "P", "palette_gif": "GIF"}


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


def masks_set(root: Path, count: int = 4) -> Path:
    """A masks-layout folder of `count` striped examples of three classes."""
    return write_masks_folder(root, count=count, num_classes=3)


def folder_source(path: Path, layout: str = "oxford", **folder_changes) -> dict:
    """The `data` params that read the image folder `path` in `layout`."""
    return {"source": "folder", "input": str(path), "folder": {"layout": layout, **folder_changes}}


def data_config(project_params: dict, **data_changes) -> DataConfig:
    """The validated data config of `project_params` at 16 px, with `data_changes`."""
    params = params_from_dict(merged(project_params, {"data": {"image_size": 16, **data_changes}}))
    params.validate()
    return params.data


def folder_data(root: Path, **changes) -> DataConfig:
    """The validated data config of the tiny params reading the masks folder `root` (classes a, b, c, half held
    out for test)."""
    folder = {"layout": "masks", "class_names": ["a", "b", "c"], "test_fraction": 0.5}
    params = params_with(merged(TINY, {"data": {"source": "folder", "input": str(root), "folder": folder, **changes}}))
    params.validate()
    return params.data


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 (chosen by the OS, released just before the workers bind them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def dotted_leaves(mapping: dict, prefix: str = "") -> list[str]:
    """The dotted names of a nested mapping's leaves (`train.augment.flip`), as DVC names params and metrics."""
    names = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        names += dotted_leaves(value, f"{name}.") if isinstance(value, dict) else [name]
    return names
