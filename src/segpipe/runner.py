"""How stage scripts and the command line run: logging set up, bad input as one line and exit 1, and
Ctrl-C or SIGTERM as one line saying what the stop left (exit 130 or 143, as a shell reports them)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from segpipe.errors import PipelineError

log = logging.getLogger("segpipe")
# tf.errors raised by TensorFlow's file layer: a disk or a path problem, not a bug to trace.
_TF_FILE_ERRORS = {"NotFoundError", "PermissionDeniedError", "ResourceExhaustedError", "AlreadyExistsError"}
# What any stop leaves, unless the code it stopped added a note (`add_note`) saying more: train, where to resume.
OUTPUTS_UNCHANGED = "outputs are unchanged (each is replaced only once it is complete)"


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler, a CI timeout), turned into the same clean stop as Ctrl-C."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def run_main(main: Callable[[], None]) -> None:
    """Run `main`; report a `PipelineError` or `OSError` as one line on stderr and exit with 1; report Ctrl-C
    (exit 130) or SIGTERM (exit 143) as one line: the notes the interrupted code added, or OUTPUTS_UNCHANGED."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TFDS's INFO lines about every dataset it opens
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to" a temporary folder
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # the converter's optimization statistics
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        main()
    except KeyboardInterrupt as stop:
        by, code = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("Ctrl-C", 130)
        log.error("interrupted by %s: %s", by, "; ".join(getattr(stop, "__notes__", [OUTPUTS_UNCHANGED])))
        sys.exit(code)
    except PipelineError as error:
        log.error("%s%s", error, _after_dvc_deleted_outputs())
        sys.exit(1)
    except OSError as error:  # a read-only or full disk, a missing folder: name the file, keep the old outputs
        log.error("cannot write or read %s: %s", error.filename or "a file", error.strerror or error)
        sys.exit(1)
    except Exception as error:
        if type(error).__name__ not in _TF_FILE_ERRORS or not type(error).__module__.startswith("tensorflow"):
            raise
        # TensorFlow's own file layer (TFRecord writer, gfile): its message names the file.
        log.error("cannot write or read a file: %s", str(getattr(error, "message", error)).splitlines()[0])
        sys.exit(1)
    finally:
        if previous is not None:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def _after_dvc_deleted_outputs() -> str:
    """Under `dvc repro`, how to get back the outputs DVC deleted before it ran this stage (the check stage
    runs before any other stage's outputs are deleted, so it needs no such advice)."""
    stage = os.environ.get("DVC_STAGE", "")
    if not stage or stage == "check":
        return ""
    return (
        f" (DVC deleted this stage's outputs before running it: `dvc checkout {stage}` restores the cached ones, "
        "`git checkout metrics plots` the committed metrics and plots)"
    )
