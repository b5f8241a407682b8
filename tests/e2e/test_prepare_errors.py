"""A bad example stops prepare, run as a user runs it (a process, and under `dvc repro`), with its one-line
error and exit 1, whichever example it is: no hang, no traceback, no thread left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import ROOT, TINY, merged, png_header_claiming, script_env, tiny_project, write_masks_folder

pytestmark = pytest.mark.slow
TIMEOUT = 300  # seconds for the nine runs started at once on two cores (one takes 8-16 alone): a hang


# With data.split_seed 0 the six images are prepared in this order: train img_0, img_1, img_4, img_5, val img_2,
# test img_3. The first one is the one that hung: the other threads were still compiling the resize function.
POSITIONS = {"first": 0, "middle": 4, "last": 3}
MASKS = {"source": "folder", "input": "toy", "folder": {"layout": "masks", "class_names": ["a", "b", "c"]}}


def spoil_with_rgb_mask(folder: Path, name: str) -> str:
    Image.new("RGB", (20, 20), (1, 2, 0)).save(folder / "masks" / name)
    return (
        f"toy/masks/{name}: a mask must be a single-channel image of class ids "
        "(mode 1, L, P, I, I;16, I;16L, I;16B, I;16N), got mode RGB"
    )


def spoil_with_unknown_class(folder: Path, name: str) -> str:
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(folder / "masks" / name)
    return f"toy/images/{name}: mask value 7 is not a class id (0..2)"


def spoil_with_decompression_bomb(folder: Path, name: str) -> str:
    (folder / "images" / name).write_bytes(png_header_claiming(10000, 5000))  # data.max_image_pixels: 40 M
    return f"toy/images/{name}: 10000x5000 is 50.0 megapixels, above the limit of 40 megapixels"


SPOILERS = [spoil_with_rgb_mask, spoil_with_unknown_class, spoil_with_decompression_bomb]


def project_with_bad_example(root: Path, spoil, index: int) -> str:
    """A project at `root` whose masks folder `toy` holds six examples, the `index`-th spoiled; the error it gives."""
    folder = write_masks_folder(root / "toy", count=6, num_classes=3)
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), merged(TINY, {"data": MASKS}))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return spoil(folder, f"img_{index}.png")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], tuple[int | None, str, str, float]]:
    """prepare run as a process on each spoiled project, all at once (each races its own threads, and the runs
    share two cores): (spoiler, position) -> (exit code, stderr, the expected error, seconds it took). A run
    still going after TIMEOUT seconds is killed, its code None."""
    root = tmp_path_factory.mktemp("bad_examples")
    started, ended = {}, {}
    for spoil in SPOILERS:
        for position, index in POSITIONS.items():
            project = root / f"{spoil.__name__}-{position}"
            message = project_with_bad_example(project, spoil, index)
            command = [sys.executable, str(ROOT / "stages/prepare.py")]
            with (project / "stderr.txt").open("w") as stderr:  # a file: a full pipe could stall a run
                process = subprocess.Popen(command, cwd=project, env=script_env(), stderr=stderr)
            started[spoil.__name__, position] = (process, project, message)
    start = time.monotonic()
    try:
        while len(ended) < len(started) and time.monotonic() - start < TIMEOUT:
            for case, (process, _, _) in started.items():
                if case not in ended and process.poll() is not None:
                    ended[case] = time.monotonic() - start
            time.sleep(0.1)
    finally:
        for process, _, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        case: (
            process.returncode if case in ended else None,
            (project / "stderr.txt").read_text(),
            message,
            ended.get(case, TIMEOUT),
        )
        for case, (process, project, message) in started.items()
    }


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("spoil", SPOILERS, ids=lambda spoil: spoil.__name__.removeprefix("spoil_with_"))
def test_a_bad_example_ends_prepare_with_its_line_and_exit_1(runs, spoil, position):
    code, stderr, message, seconds = runs[spoil.__name__, position]
    assert seconds < TIMEOUT, f"still running after {TIMEOUT} s"
    assert code == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == f"ERROR segpipe: {message}"
    assert "Traceback" not in stderr


def test_a_bad_example_under_dvc_repro_fails_the_stage_and_releases_the_lock(tmp_path):
    repo = tiny_project(tmp_path)
    message = project_with_bad_example(tmp_path, spoil_with_rgb_mask, POSITIONS["first"])
    repo.set_params({"data": MASKS})
    repo.commit("a masks folder with an RGB mask first")
    dvc = str(Path(sys.executable).parent / "dvc")
    # Its own session: were it to hang, the stage it started is killed with it.
    command = [dvc, "repro", "prepare"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=repo.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        output = process.communicate(timeout=TIMEOUT)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 255, output  # DVC's code for a stage that failed
    restore = (
        " (DVC deleted this stage's outputs before running it: `dvc checkout prepare` restores the cached ones, "
        "`git checkout metrics plots` the committed metrics and plots)"
    )
    assert f"ERROR segpipe: {message}{restore}\n" in output
    assert "ERROR: failed to reproduce 'prepare': failed to run: python stages/prepare.py, exited with 1" in output
    assert "Traceback" not in output
    # The lock is free: DVC answers at once, and reports prepare as changed (it never completed).
    status = json.loads(repo.dvc("status", "--json", "prepare"))
    assert list(status) == ["prepare"]
