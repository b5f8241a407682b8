"""Errors the pipeline reports as one line and a non-zero exit, without a traceback."""


class PipelineError(Exception):
    """Bad input: the message names the param, file or entry at fault and what was expected."""


class ConfigError(PipelineError, ValueError):
    """A param is missing, unknown, of the wrong type or out of range."""


class DataError(PipelineError, ValueError):
    """Prepared data, a model file or a source example is missing or does not fit."""
