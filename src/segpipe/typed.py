"""Plain mappings (from YAML or JSON) → frozen dataclasses, checking keys and types on the way.

Used for `params.yaml` (config.py) and the prepared data's manifest (prepared.py). Every error
is a `ConfigError` whose message names the key, as the user would write it (`train.epochs`).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal

from segpipe.errors import ConfigError, ParamError


def from_mapping(cls: type, raw: Any, key: str = "", given: dict[str, Any] | None = None, noun: str = "param") -> Any:
    """An instance of dataclass `cls` built from `raw`, refusing unknown, missing and mistyped keys.

    Fields in `given` are passed as they are, not read from `raw`; `noun` names a key in errors. A key
    in the class's `RENAMED` (old name → new key) is refused with its new name.
    """
    given = given or {}
    if not isinstance(raw, dict):
        problem = f"must be a mapping, got {describe(raw)}"
        raise ParamError(key, problem) if key else ConfigError(f"the {noun}s {problem}")
    hints = typing.get_type_hints(cls)
    fields = {_key(field): field.name for field in dataclasses.fields(cls) if field.name not in given}
    renamed = getattr(cls, "RENAMED", {})
    for name in raw:
        if name in renamed:
            raise ParamError(_join(key, name), f"is now {renamed[name]}: rename it in params.yaml")
        if name not in fields:
            raise ParamError(_join(key, name), f"is not a known {noun}{did_you_mean(str(name), fields)}")
    values = dict(given)
    for name, attribute in fields.items():
        child = _join(key, name)
        if name not in raw:
            raise ParamError(child, "is missing")
        values[attribute] = _converted(hints[attribute], raw[name], child, noun)
    return cls(**values)


def to_mapping(value: Any) -> Any:
    """The plain mapping (for JSON) that `from_mapping` reads back into `value`, a dataclass or a value in one."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_key(field): to_mapping(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_mapping(item) for item in value]
    if isinstance(value, dict):
        return {name: to_mapping(item) for name, item in value.items()}
    return value


def choices(literal: Any) -> tuple[str, ...]:
    """The values a `Literal[...]` type allows, in order."""
    return typing.get_args(literal)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _converted(hint: Any, value: Any, key: str, noun: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, key, noun=noun)
    if hint is Any:
        return value
    if typing.get_origin(hint) is Literal:
        if value not in choices(hint):
            raise ParamError(key, f"must be one of {', '.join(choices(hint))}, got {value!r}")
        return value
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:  # X | None
        if value is None and type(None) in typing.get_args(hint):
            return None
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if hint == tuple[str, ...]:
        if not (isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)):
            raise ParamError(key, f"must be a list of strings, got {describe(value)}")
        return tuple(value)
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    """`value` as the bool, int, float or str `hint` names (an int is a float too; a bool is not an int)."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint not in (bool, int, float, str):
        raise TypeError(f"unsupported type {hint} for {key}")
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ParamError(key, f"must be {hint.__name__}, got {describe(value)}")
    return value


def _key(field: dataclasses.Field) -> str:
    """The field's key in the mapping: its name, unless its metadata names another (`{"key": ...}`)."""
    return field.metadata.get("key", field.name)


def _join(prefix: str, name: Any) -> str:
    return f"{prefix}.{name}" if prefix else str(name)
