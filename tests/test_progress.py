"""Long work logs a line at each tenth done, once it has run for a while; short work logs nothing."""

from __future__ import annotations

import logging

from segpipe.progress import QUIET_SECONDS, Progress, counted

log = logging.getLogger("segpipe.test")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_long_work_logs_each_tenth_but_not_the_end(caplog):
    caplog.set_level("INFO")
    clock = Clock()
    progress = Progress(log, "test", 1000, "images scored", clock)
    for _ in range(100):
        clock.now += 1.0  # 100 s for 1,000 images
        progress.advance(10)
    assert caplog.messages == [
        f"test: {done:,} of 1,000 images scored ({done // 10}%), {(done // 10) // 60}:{(done // 10) % 60:02d} so far"
        for done in range(100, 1000, 100)
    ]


def test_work_shorter_than_the_quiet_time_logs_nothing(caplog):
    caplog.set_level("INFO")
    clock = Clock()
    progress = Progress(log, "train", 50, "images prepared", clock)
    for _ in counted(range(50), progress):
        clock.now += (QUIET_SECONDS - 1) / 50
    assert caplog.messages == []


def test_the_first_line_waits_for_the_quiet_time_then_for_the_next_tenth(caplog):
    caplog.set_level("INFO")
    clock = Clock()
    progress = Progress(log, "val", 100, "images prepared", clock)
    progress.advance(35)  # 35 % at once: nothing yet
    clock.now = QUIET_SECONDS
    progress.advance(4)  # 39 %: still in the fourth tenth
    progress.advance(1)  # 40 %
    assert caplog.messages == ["val: 40 of 100 images prepared (40%), 0:10 so far"]
