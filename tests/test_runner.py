"""How every stage and the CLI end: Ctrl-C or SIGTERM in one line (exit 130 or 143), errors under DVC."""

from __future__ import annotations

import os
import signal

import pytest
import tensorflow as tf

from segpipe.errors import DataError
from segpipe.runner import run_main


def interrupted(note: str | None = None):
    def main() -> None:
        stop = KeyboardInterrupt()
        if note:
            stop.add_note(note)
        raise stop

    return main


def test_ctrl_c_is_one_line_saying_the_outputs_are_unchanged_and_exit_130(caplog):
    with pytest.raises(SystemExit) as exit_status:
        run_main(interrupted())
    assert exit_status.value.code == 130
    message = "interrupted by Ctrl-C: outputs are unchanged (each is replaced only once it is complete)"
    assert [record.getMessage() for record in caplog.records] == [message]


def test_the_interrupted_code_says_what_it_left_in_a_note(caplog):
    with pytest.raises(SystemExit):
        run_main(interrupted("training stopped in epoch 3 of 4"))
    assert caplog.records[-1].getMessage() == "interrupted by Ctrl-C: training stopped in epoch 3 of 4"


def test_sigterm_is_the_same_clean_stop_with_exit_143(caplog):
    with pytest.raises(SystemExit) as exit_status:
        run_main(lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert exit_status.value.code == 143
    message = "interrupted by SIGTERM: outputs are unchanged (each is replaced only once it is complete)"
    assert caplog.records[-1].getMessage() == message


def test_the_sigterm_handler_is_put_back_afterwards():
    def ours(signum, frame):
        pass

    original = signal.signal(signal.SIGTERM, ours)
    try:
        run_main(lambda: None)
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, original)


def test_an_error_under_dvc_says_how_to_restore_the_outputs_dvc_deleted(monkeypatch, caplog):
    monkeypatch.setenv("DVC_STAGE", "prepare")

    def bad() -> None:
        raise DataError("data/images/a.png: unreadable image (broken)")

    with pytest.raises(SystemExit) as stop:
        run_main(bad)
    assert stop.value.code == 1
    assert caplog.records[-1].getMessage() == (
        "data/images/a.png: unreadable image (broken) (DVC deleted this stage's outputs before running it: "
        "`dvc checkout prepare` restores the cached ones, `git checkout metrics plots` the committed metrics and plots)"
    )


def test_the_check_stage_needs_no_restore_advice(monkeypatch, caplog):
    monkeypatch.setenv("DVC_STAGE", "check")

    def bad() -> None:
        raise DataError("train.epochs must be >= 1, got 0")

    with pytest.raises(SystemExit):
        run_main(bad)
    assert caplog.records[-1].getMessage() == "train.epochs must be >= 1, got 0"


def test_a_tensorflow_file_error_is_one_line(caplog):
    def write() -> None:
        raise tf.errors.PermissionDeniedError(None, None, "models/x.tfrecord; Permission denied")

    with pytest.raises(SystemExit) as exit_status:
        run_main(write)
    assert exit_status.value.code == 1
    assert caplog.records[-1].getMessage() == "cannot write or read a file: models/x.tfrecord; Permission denied"
