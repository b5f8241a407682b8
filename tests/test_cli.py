"""The `segpipe` command line (cli.py); `segpipe predict` itself is in test_predict.py."""

from __future__ import annotations

import importlib.metadata

import pytest

from segpipe.cli import main as segpipe


def test_the_version_is_the_installed_packages(capsys):
    with pytest.raises(SystemExit):
        segpipe(["--version"])
    assert capsys.readouterr().out == f"segpipe {importlib.metadata.version('segpipe')}\n"
