"""The file formats as key trees: what tests/reference/formats.json pins (regenerate: python tests/formats.py)."""

from __future__ import annotations

import dataclasses
import json
import typing
import zipfile
from pathlib import Path

from ttH_adv.records import Record

FORMATS = Path(__file__).parent / "reference" / "formats.json"


def _record_of(hint) -> type | None:
    """The record class a field holds directly, in a list or as mapping values (None for plain data)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, __import__("types").UnionType):
        inner = [a for a in args if a is not type(None)]
        return _record_of(inner[0]) if len(inner) == 1 else None
    if origin in (list, tuple) and args:
        return _record_of(args[0])
    if origin is dict and len(args) == 2:
        return _record_of(args[1])
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) and issubclass(hint, Record) else None


def key_tree(cls: type) -> dict:
    """A record's JSON keys, each with the key tree of the record it holds (null for plain data)."""
    hints, names = typing.get_type_hints(cls), getattr(cls, "JSON_NAMES", {})
    return {names.get(f.name, f.name): (key_tree(r) if (r := _record_of(hints[f.name])) else None)
            for f in dataclasses.fields(cls) if f.name != getattr(cls, "EXTRA", None)}


def file_trees() -> dict:
    """Every JSON result file's key tree, by file name."""
    from ttH_adv.stats.categorize import CategoriesFile
    from ttH_adv.stats.compare import Comparison
    from ttH_adv.stats.fit_results import FitResult
    from ttH_adv.stats.training_results import TrainingSummary

    return {"fits.json": key_tree(FitResult), "comparison.json": key_tree(Comparison),
            "categories.json": key_tree(CategoriesFile), "results.json": key_tree(TrainingSummary)}


def zip_layout(path: str | Path) -> dict:
    """An output zip's members (histograms by name) and the top-level keys of its content."""
    from ttH_adv.output import CONTENT

    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        content = json.loads(zf.read(CONTENT))
    return {"members": names, "content": sorted(content), "metadata": sorted(content["metadata"])}


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(FORMATS.parent))
    from make_reference import reference_output

    from ttH_adv.output import save_output

    with tempfile.TemporaryDirectory() as tmp:
        layout = zip_layout(save_output(reference_output(), Path(tmp) / "output.zip"))
    FORMATS.write_text(json.dumps({**file_trees(), "output.zip": layout}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FORMATS}")
