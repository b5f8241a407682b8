"""Fixtures: the project's own params, and the tiny configuration that trains in seconds (as a mapping and typed)."""

from __future__ import annotations

import pytest
import yaml

from segpipe.config import Params, params_from_dict
from tests.helpers import ROOT, TINY, merged


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
