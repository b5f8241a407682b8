"""Shared fixtures: the project's own params, and a tiny configuration that trains in seconds."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small enough that the whole pipeline runs in well under a minute on two CPU cores.
TINY = {
    "data": {
        "image_size": 32,
        "shard_size": 8,
        "embedded": {"train_examples": 24, "test_examples": 8, "min_side": 40, "max_side": 56, "seed": 0},
    },
    "model": {"depth": 2, "base_filters": 4},
    "train": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8},
    "evaluate": {"batch_size": 8},
    "visualize": {"num_examples": 2, "dpi": 40},
}


def merged(base: dict, changes: dict) -> dict:
    """A deep copy of `base` with the nested `changes` applied."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        result[key] = merged(result.get(key, {}), value) if isinstance(value, dict) else value
    return result


@pytest.fixture
def project_params() -> dict:
    """The project's params.yaml as a plain mapping."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def tiny_params(project_params: dict) -> dict:
    return merged(project_params, TINY)
