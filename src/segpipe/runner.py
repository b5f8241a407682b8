"""How stage scripts and the command line run: logging set up, and bad input as one line and exit 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from segpipe.errors import PipelineError

log = logging.getLogger("segpipe")
# tf.errors raised by TensorFlow's file layer: a disk or a path problem, not a bug to trace.
_TF_FILE_ERRORS = {"NotFoundError", "PermissionDeniedError", "ResourceExhaustedError", "AlreadyExistsError"}


def run_main(main: Callable[[], None]) -> None:
    """Run `main`; report a `PipelineError` or `OSError` as one line on stderr and exit with 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TFDS's INFO lines about every dataset it opens
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to" a temporary folder
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # the converter's optimization statistics
    try:
        main()
    except PipelineError as error:
        log.error("%s", error)
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
