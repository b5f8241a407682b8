"""Errors the pipeline reports as one line and a non-zero exit, without a traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """Bad input: the message names the param, file or entry at fault and what was expected."""


class ConfigError(PipelineError, ValueError):
    """A param is missing, unknown, of the wrong type or out of range."""


class ParamError(ConfigError):
    """One key's value is refused: `key` as the user writes it (`train.epochs`), `problem` what is wrong
    (`must be >= 1, got 0`), `value` the value shown beside the key if any, and `readers` the stages that
    read the key (a stage that validates every param may be another one): `train.epochs (read by train)
    must be >= 1, got 0`."""

    def __init__(self, key: str, problem: str, value: str | None = None, readers: tuple[str, ...] = ()):
        notes = [note for note in (value, f"read by {', '.join(readers)}" if readers else None) if note]
        super().__init__(f"{key} ({'; '.join(notes)}) {problem}" if notes else f"{key} {problem}")
        self.key, self.problem, self.value, self.readers = key, problem, value, readers


class DataError(PipelineError, ValueError):
    """Prepared data, a model file or a source example is missing or does not fit."""
