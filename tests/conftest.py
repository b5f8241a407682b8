"""Fixtures: the project's own params, and the tiny configuration that trains in seconds (as a mapping and typed)."""

from __future__ import annotations

import signal

import pytest
import yaml

from segpipe.config import Params, params_from_dict
from tests.helpers import ROOT, TINY, merged


def pytest_configure(config):
    """Ctrl-C must reach the stage processes the tests stop with SIGINT. A shell without job control starts a
    background job (`make test &` in a script, nohup) with SIGINT ignored, and an ignored signal stays ignored in
    every process started from it, so Python would install no KeyboardInterrupt handler there. With a handler here,
    exec gives the processes the tests start the default disposition, as a terminal's Ctrl-C finds it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def project_params() -> dict:
    """The project's params.yaml as a plain mapping."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def tiny_params(project_params: dict) -> dict:
    return merged(project_params, TINY)


@pytest.fixture
def tiny_config(tiny_params: dict) -> Params:
    """The tiny configuration, typed."""
    return params_from_dict(tiny_params)
