"""Every JSON or YAML file a command reads goes through here.

A file that is missing, not text, not valid JSON/YAML, not a mapping or lacking a key the reader
needs gives one error that names the file, the line and column where the parser stopped, and
what the file was expected to be.  The error class is the caller's (a manifest gives a
``ManifestError``, a configuration a ``ConfigError``), so each exits 2 with one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, InputFileError, TthAdvError, one_line


def read_document(path: str | Path, what: str, *, required: Iterable[str] = (),
                  error: type[TthAdvError] = ConfigError, empty_ok: bool = False) -> dict[str, Any]:
    """The top-level mapping of a JSON (``.json``) or YAML file, checked to be ``what`` (e.g. "a manifest")."""
    path = Path(path)
    if not path.is_file():
        raise document_error(error, f"{what} not found: {path}" + (" (a folder)" if path.is_dir() else ""), path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise document_error(error, f"{path}: not a text file, expected {what}: {one_line(exc)}", path) from None
    return parse_document(text, str(path), what, required=required, error=error, empty_ok=empty_ok,
                          as_json=path.suffix == ".json")


def parse_document(text: str, source: str, what: str, *, required: Iterable[str] = (),
                   error: type[TthAdvError] = ConfigError, empty_ok: bool = False,
                   as_json: bool = False) -> dict[str, Any]:
    """The top-level mapping of JSON or YAML text read from ``source`` (a file name or a packaged resource)."""
    try:
        data = json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise document_error(error, f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
                                    f"expected {what}", source) from None
    except yaml.YAMLError as exc:
        raise document_error(error, f"{source}: not valid YAML: {one_line(exc)}; expected {what}", source) from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise document_error(error, f"{source}: expected {what} (a mapping at top level), got "
                                    f"{'an empty file' if data is None else type(data).__name__}", source)
    missing = [key for key in required if key not in data]
    if missing:
        raise document_error(error, f"{source}: not {what}: it lacks the key(s) {missing} (its keys: "
                                    f"{sorted(data)[:8]})", source)
    return data


def document_error(error: type[TthAdvError], message: str, path: str | Path) -> TthAdvError:
    """The caller's error class with the message (and the path, where the class keeps one)."""
    return error(message, path=str(path)) if issubclass(error, InputFileError) else error(message)
