"""Progress of long work as periodic log lines: readable in a terminal and quiet in a CI log.

A line each time another tenth of the work is done, and only once the work has run for
`QUIET_SECONDS`: a small dataset prints nothing, a large one at most nine lines per step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
QUIET_SECONDS = 10.0  # work that ends sooner prints no progress at all


class Progress:
    """Counts `total` items of `what` (e.g. `test: predicting`) and logs `what: 1,200 of 7,349 images (16%),
    0:42 so far` at each tenth passed, once `QUIET_SECONDS` have gone by."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        unit: str = "images",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.what, self.total, self.unit, self.clock = log, what, total, unit, clock
        self.start, self.done, self.tenths = clock(), 0, 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.done >= self.total:  # the end: the caller says what it did
            return
        tenths = self.done * 10 // self.total
        if tenths > self.tenths and self.clock() - self.start >= QUIET_SECONDS:
            elapsed = int(self.clock() - self.start)
            self.log.info(
                "%s: %s of %s %s (%d%%), %d:%02d so far",
                self.what,
                f"{self.done:,}",
                f"{self.total:,}",
                self.unit,
                100 * self.done // self.total,
                elapsed // 60,
                elapsed % 60,
            )
        self.tenths = max(self.tenths, tenths)


def counted(items: Iterable[T], progress: Progress) -> Iterator[T]:
    """`items`, counting each one into `progress`."""
    for item in items:
        yield item
        progress.advance()
