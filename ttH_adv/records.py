"""Typed results: dataclasses that are written to JSON and read back (``Record.to_dict`` / ``from_dict``).

A result file's fields are its dataclass's fields, so a renamed field fails where the result is
read, not later in a report.  ``from_dict`` builds nested records, lists and mappings of records
and optional records from the field annotations; a field missing from the file takes its default
(a file of an earlier version) or, without one, is an error naming the record and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from .documents import document_error, read_document
from .errors import InputFileError, TthAdvError

R = TypeVar("R", bound="Record")


class Record:
    """A dataclass that is one JSON object: fields of numbers, strings, lists, mappings and other dataclasses.

    ``JSON_NAMES`` renames a field in the file where its key is no Python name ("lambda").  ``EXTRA`` names a
    mapping field that keeps the file's other keys (written back beside the named ones): for a record whose
    readers need a few of many figures."""

    JSON_NAMES: typing.ClassVar[dict[str, str]] = {}
    EXTRA: typing.ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data (nested records too)."""
        named = {self.JSON_NAMES.get(f.name, f.name): _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                 if f.name != self.EXTRA}
        return {**(_plain(getattr(self, self.EXTRA)) if self.EXTRA else {}), **named}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record from JSON data (``to_dict``'s inverse); a missing field without a default is a ``KeyError``
        naming it."""
        return _build(cls, data)


def read_record(cls: type[R], path: str | Path, what: str, remedy: str, *, required: Iterable[str] = (),
                error: type[TthAdvError] = InputFileError) -> R:
    """A result file as its record: ``read_document``'s checks, then ``from_dict``; a file another version wrote
    (a key missing, a value of another shape) is one error naming the file, what it lacks and ``remedy``."""
    data = read_document(path, what, required=required, error=error)
    try:
        return cls.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise document_error(error, f"{path}: not {what} of this version ({exc}): {remedy}", path) from None


def _build(cls: type, data: dict[str, Any]) -> Any:
    """A dataclass from JSON data, its fields typed by their annotations."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} is a mapping, not {type(data).__name__}")
    values, names, extra = {}, getattr(cls, "JSON_NAMES", {}), getattr(cls, "EXTRA", None)
    keys = {names.get(f.name, f.name) for f in dataclasses.fields(cls)}
    if extra:
        values[extra] = {k: v for k, v in data.items() if k not in keys}
    for f in dataclasses.fields(cls):
        if f.name == extra:
            continue
        key = names.get(f.name, f.name)
        if key in data:
            values[f.name] = _typed(_hints(cls)[f.name], data[key])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise KeyError(f"{cls.__name__} needs {key!r}")
    return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}  # a configuration
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` (JSON data) as the annotated type: records built, containers of records filled."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _typed(inner[0], value) if len(inner) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value)
    if origin in (list, tuple) and args:
        items = [_typed(args[0], v) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict and len(args) == 2:
        return {k: _typed(args[1], v) for k, v in value.items()}
    return value
