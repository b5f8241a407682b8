"""TensorFlow's start-up lines (and two harmless errors) kept out of a stage's output; every other byte of
stderr passed through.

While TensorFlow's libraries load, before its logging is set up, absl writes whatever they log to stderr,
ignoring TF_CPP_MIN_LOG_LEVEL, and says so once per library. Measured with tensorflow 2.21 (0 to 3, and
CUDA_VISIBLE_DEVICES=-1: no environment variable stops them), each stage printed twice:
- `WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`;
- `I... port.cc:...] oneDNN custom operations are on. ...` where oneDNN is on (only TF_ENABLE_ONEDNN_OPTS=0
  stops it, which changes the kernels and so the weights: not an option);
- `I... cudart_stub.cc:...] Could not find cuda drivers on your machine, GPU will not be used.`;
and two ERROR lines with nothing to act on: without an NVIDIA driver, `failed call to cuInit` (no driver, no
GPU to use); and in training, tf.data's `NodeDef mentions attribute use_unbounded_threadpool which is not in the
op definition: Op<name=MapDataset; ...` (a mismatch inside TensorFlow's own rewrite of the input pipeline; the
line itself says that unknown attributes are ignored). `filter_tensorflow_noise` sends fd 2 through a forked
child that drops exactly these lines. TF_CPP_MIN_LOG_LEVEL stays 2 (segpipe/__init__.py), so TensorFlow's
other errors still show, as do Python's tracebacks and a crash's last words: the child drains the pipe until
every writer is gone.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import sys
import time

ENV_FILTERED = "SEGPIPE_STDERR_FILTERED"  # set once a process filters: its child processes write into the same filter
_TF_LINE = rb"[IWEF]\d{4} [\d:.]+ +\d+ "  # absl's prefix: severity, date, time, thread id
NOISE_LINES = [
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    _TF_LINE + rb"port\.cc:\d+\] oneDNN custom operations are on\. .*",
    _TF_LINE + rb"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.",
    _TF_LINE + rb"node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool which is not in the "
    rb"op definition: Op<name=MapDataset; .*",
]
NO_DRIVER_LINES = [_TF_LINE + rb"cuda_[a-z]+\.cc:\d+\] failed call to cuInit: .*"]
_DRAIN_SECONDS = 5  # at exit, how long to wait for the filter to pass the last lines on


def noise_pattern(has_nvidia_driver: bool) -> re.Pattern[bytes]:
    """The lines to drop: NOISE_LINES, and the failed cuInit where there is no driver to init."""
    lines = NOISE_LINES + ([] if has_nvidia_driver else NO_DRIVER_LINES)
    return re.compile(b"|".join(b"(?:" + line + b")" for line in lines))


def filter_tensorflow_noise() -> None:
    """From now on, this process's stderr (fd 2, which child processes inherit) goes through a filter
    that drops TensorFlow's noise (NOISE_LINES). Call it before anything imports TensorFlow. Nothing is
    filtered with TF_CPP_MIN_LOG_LEVEL=0 (every line wanted), on a system without fork, or twice."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or not hasattr(os, "fork") or os.environ.get(ENV_FILTERED):
        return
    noise = noise_pattern(os.path.exists("/proc/driver/nvidia/version"))
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        _run_filter(read_end, write_end, noise)
    os.close(read_end)
    original = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.environ[ENV_FILTERED] = "1"
    atexit.register(_stop_filter, pid, original)


def _run_filter(read_end: int, write_end: int, noise: re.Pattern[bytes]) -> None:
    """The forked child: copy the pipe to the real stderr without the noise, until no process writes into it."""
    try:
        # Ctrl-C and a group's SIGTERM reach this child too: it must outlive the stage to pass on its last lines.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.close(write_end)
        copy_filtered(read_end, 2, noise)
    finally:
        os._exit(0)  # never the parent's atexit handlers or buffers


def copy_filtered(source: int, target: int, noise: re.Pattern[bytes]) -> None:
    """Copy `source` to `target` until its end, dropping each whole line `noise` matches. An unfinished line
    is passed on at once unless it could be the start of a log line (a severity letter first)."""
    pending = b""
    while chunk := os.read(source, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not noise.fullmatch(line))
        if pending[:1] not in (b"I", b"W", b"E", b"F"):
            kept, pending = kept + pending, b""
        target = _write(target, kept)
    _write(target, pending)


def _write(target: int, data: bytes) -> int:
    """Write all of `data`; a closed stderr (-1 from then on) is drained, never a reason to block the stage."""
    view = memoryview(data)
    while view and target >= 0:
        try:
            view = view[os.write(target, view) :]
        except OSError:
            return -1
    return target


def _stop_filter(pid: int, original: int) -> None:
    """At exit: end the pipe (this process's end of it) and wait for the filter to pass the last lines on, so
    that they come out before whatever runs after the stage prints."""
    sys.stderr.flush()
    os.dup2(original, 2)
    deadline = time.monotonic() + _DRAIN_SECONDS
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.01)
