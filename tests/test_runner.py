"""How every stage and the CLI end when stopped: Ctrl-C or SIGTERM is one line and exit 130 or 143."""

from __future__ import annotations

import os
import signal

import pytest

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
    before = signal.getsignal(signal.SIGTERM)
    run_main(lambda: None)
    assert signal.getsignal(signal.SIGTERM) is before
