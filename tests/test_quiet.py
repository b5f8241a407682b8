"""TensorFlow's start-up lines are kept out of a stage's stderr, and nothing else is."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from segpipe.quiet import copy_filtered, noise_pattern
from tests.helpers import script_env

ABSL = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = (
    b"I0000 00:00:1796226868.182243   17615 port.cc:153] oneDNN custom operations are on. You may see slightly "
    b"different numerical results due to floating-point round-off errors from different computation orders. To "
    b"turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`."
)
CUDART = (
    b"I0000 00:00:1796226824.623720   16875 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    b"GPU will not be used."
)
CUINIT = (
    b"E0000 00:00:1796226847.788392   16875 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    b"Failed call to cuInit: UNKNOWN ERROR (303)"
)
NODE_DEF = (
    b"E0000 00:00:1796227544.561425   26283 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool "
    b"which is not in the op definition: Op<name=MapDataset; signature=input_dataset:variant, other_arguments: -> "
    b"handle:variant> This may be expected if your graph generating binary is newer  than this binary. Unknown "
    b"attributes will be ignored. NodeDef: {{node ParallelMapDatasetV2/_26}}"
)
TF_ERROR = b"E0000 00:00:1796227260.389923   21745 logging_ops.cc:173] a TensorFlow error"


def filtered(data: bytes, has_nvidia_driver: bool = False) -> bytes:
    source_read, source_write = os.pipe()
    target_read, target_write = os.pipe()
    os.write(source_write, data)
    os.close(source_write)
    copy_filtered(source_read, target_write, noise_pattern(has_nvidia_driver))
    os.close(source_read)
    os.close(target_write)
    with os.fdopen(target_read, "rb") as target:
        return target.read()


def test_the_start_up_lines_are_dropped_and_every_other_line_kept():
    data = b"\n".join([ABSL, ONEDNN, CUDART, b"INFO segpipe.train: training on CPU", ABSL, NODE_DEF, TF_ERROR, b""])
    assert filtered(data) == b"INFO segpipe.train: training on CPU\n" + TF_ERROR + b"\n"


def test_the_failed_cuinit_is_dropped_only_where_there_is_no_nvidia_driver():
    assert filtered(CUINIT + b"\n", has_nvidia_driver=False) == b""
    assert filtered(CUINIT + b"\n", has_nvidia_driver=True) == CUINIT + b"\n"


def test_a_line_that_only_resembles_a_start_up_line_is_kept():
    line = b"I0000 00:00:1796226824.623720   16875 cudart_stub.cc:31] Could not find cuda drivers: libcuda.so.1 broken"
    assert filtered(line + b"\n" + ABSL + b" (and more)\n") == line + b"\n" + ABSL + b" (and more)\n"


def test_an_unfinished_last_line_is_passed_on():
    assert filtered(b"INFO done\nERROR no newline at the end") == b"INFO done\nERROR no newline at the end"


def run_filtered(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` run in a fresh interpreter after `filter_tensorflow_noise()`, its output captured."""
    script = f"from segpipe.quiet import filter_tensorflow_noise\nfilter_tensorflow_noise()\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script], env={**script_env(), **env}, capture_output=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_tensorflow_loads_silently_and_its_errors_still_show():
    result = run_filtered(
        "import tensorflow as tf\ntf.print('a TensorFlow error', output_stream=tf.compat.v1.logging.error)"
    )
    assert result.returncode == 0
    # The whole of stderr: the error, in absl's format, and tf.print's own line end after absl's.
    assert re.fullmatch(rb"E\d{4} [\d:.]+ +\d+ logging_ops\.cc:\d+\] a TensorFlow error\n\n", result.stderr)


@pytest.mark.slow
def test_everything_shows_with_tf_cpp_min_log_level_0():
    result = run_filtered("import os\nos.write(2, b'" + CUDART.decode() + "\\n')", TF_CPP_MIN_LOG_LEVEL="0")
    assert result.stderr == CUDART + b"\n"


@pytest.mark.slow
def test_the_last_words_of_a_killed_process_still_come_out():
    result = run_filtered(
        "import os, signal, sys\nsys.stderr.write('last words\\n')\nsys.stderr.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    assert result.returncode == -9
    assert result.stderr == b"last words\n"


@pytest.mark.slow
def test_what_a_child_process_writes_is_filtered_too():
    child = f"import os; os.write(2, {CUDART!r} + b'\\n' + b'from the child\\n')"
    result = run_filtered(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child!r}], check=True)")
    assert result.stderr == b"from the child\n"
