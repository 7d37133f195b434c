"""Error types: each names the file, branch, sample or option at fault."""

from __future__ import annotations


class TthAdvError(Exception):
    """Base class for every error this package raises on bad input."""


class ConfigError(TthAdvError):
    """A configuration file or value is malformed."""


class ManifestError(TthAdvError):
    """A datasets manifest is malformed or points at missing files."""


class InputFileError(TthAdvError):
    """An input ROOT file is missing, unreadable, empty or lacks a tree or branch."""

    def __init__(self, message: str, *, path: str, dataset: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.dataset = dataset

    def __reduce__(self):
        """Pickle with the keyword fields (a check run on a Dask worker sends the error back)."""
        return (_rebuild_input_error, (type(self), str(self), self.path, self.dataset))


def _rebuild_input_error(cls: type, message: str, path: str, dataset: str | None) -> InputFileError:
    return cls(message, path=path, dataset=dataset)


class MissingBranchError(InputFileError):
    """An input tree lacks branches the analysis needs."""


class ProcessingError(TthAdvError):
    """Processing stopped on a chunk (the message names dataset, file and entry range)."""


def one_line(exc: Exception) -> str:
    """A third-party error's message on one line (uproot's and onnxruntime's span several; YAML's: what, where)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:  # yaml's MarkedYAMLError
        return f"{getattr(exc, 'problem', None) or exc} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())
