"""How stage scripts and the command line run: logging set up, and bad input as one line and exit 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from segpipe.errors import PipelineError

log = logging.getLogger("segpipe")


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
