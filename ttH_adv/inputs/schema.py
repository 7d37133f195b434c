"""A coffea schema for flat ntuples (ATLAS Open Data 13 TeV and anything with a branch map).

``FlatNtupleSchema`` zips prefixed branches into records: ``photon``, ``jet``, ``lepton`` and the
singleton ``met``, named as in the configured branch map, in the file's units.  Unmapped
branches stay at top level under their own names (real Open Data files carry many).  The
Lorentz-vector objects in GeV are built from these records by ``ttH_adv.inputs.objects``.

It reads counted C arrays (what uproot writes) and ``std::vector`` branches (what real Open
Data files hold) alike, whatever the counter's integer type: only the per-branch offsets are
used.  A tree lacking a mapped branch raises ``MissingBranchError`` naming the branches;
``check_branches`` does the same per file before any processing, naming file and tree.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import awkward as ak
import uproot
from coffea.nanoevents import NanoEventsFactory
from coffea.nanoevents.methods import base, vector
from coffea.nanoevents.schemas.base import BaseSchema, zip_forms

from ..config import BranchMap, build_section
from ..errors import ConfigError, InputFileError, MissingBranchError, one_line


class FlatNtupleSchema(BaseSchema):
    """Zip the branch map's prefixed branches into records; keep other branches as they are.

    The branch map travels in the events' metadata (key ``branch_map``, a plain dict as
    ``branch_map_dict`` writes it), so coffea's executors can ship this class by reference to
    any worker.  Events without one are refused: a silent default map would read another format's
    branches.
    """

    __dask_capable__ = True

    def __init__(self, base_form: dict, *args, **kwargs) -> None:
        super().__init__(base_form, *args, **kwargs)
        metadata = self._form["parameters"].get("metadata") or {}
        if "branch_map" not in metadata:
            raise ConfigError(f"file {metadata.get('filename', '<unknown file>')}: the events' metadata carry no "
                              "'branch_map' (processors.run.preflight and read_events put the format's there)")
        branch_map = branch_map_from_dict(metadata["branch_map"])
        forms = dict(zip(self._form["fields"], self._form["contents"], strict=True))
        missing = [b for b in branch_map.required_branches() if b not in forms]
        if missing:
            path = metadata.get("filename", "<unknown file>")
            raise MissingBranchError(f"file {path}, tree '{metadata.get('treename', '?')}' lacks required "
                                     f"branch(es): {', '.join(missing)}", path=path, dataset=metadata.get("dataset"))
        output = {}  # optional fields (object-systematic shifts) join their record only where the file has them
        for name, coll in branch_map.collections.items():
            fields = {f: forms.pop(coll.branch(f)) for f in coll.fields if coll.branch(f) in forms}
            output[name] = zip_forms(fields, name)
        for name, fields in branch_map.singletons.items():
            output[name] = zip_forms({f: forms.pop(b) for f, b in fields.items() if b in forms}, name)
        output.update(forms)
        self._form["fields"] = list(output)
        self._form["contents"] = list(output.values())

    @classmethod
    def behavior(cls) -> dict:
        """NanoEvents base behaviour plus Lorentz vectors (used by ``ttH_adv.inputs.objects``)."""
        behavior = {}
        behavior.update(base.behavior)
        behavior.update(vector.behavior)
        return behavior


def branch_map_dict(branch_map: BranchMap) -> dict:
    """The branch map as plain data, for the events' metadata."""
    return dataclasses.asdict(branch_map)


@functools.lru_cache(maxsize=16)
def _branch_map_from_json(text: str) -> BranchMap:
    return build_section(BranchMap, json.loads(text), "branches")


def branch_map_from_dict(data: dict) -> BranchMap:
    """Rebuild (and cache) a BranchMap from ``branch_map_dict`` output."""
    return _branch_map_from_json(json.dumps(data, sort_keys=True))


def read_events(path: str, branch_map: BranchMap, tree: str | None = None, **kwargs) -> ak.Array:
    """Events of one file (in the branch map's tree unless named) through the schema (eager), for scripts and tests."""
    tree = tree or branch_map.tree
    metadata = {"filename": path, "treename": tree, "branch_map": branch_map_dict(branch_map)}
    factory = NanoEventsFactory.from_root({path: tree}, schemaclass=FlatNtupleSchema, metadata=metadata,
                                          mode=kwargs.pop("mode", "eager"), **kwargs)
    return factory.events()


@dataclass(frozen=True)
class FileCheck:
    """What the check of one file learnt: its entries, ROOT file UUID and basket-aligned entry offsets."""

    entries: int
    uuid: bytes
    clusters: tuple[int, ...] = ()  # entries where every required branch starts a new basket
    missing_optional: tuple[str, ...] = ()  # optional branches (object-systematic shifts) the file lacks


def check_branches(path: str, tree: str, required: Iterable[str], dataset: str | None = None) -> int:
    """Open one file, check its tree and branches; return its number of entries."""
    return check_file(path, tree, required, dataset).entries


def check_file(path: str, tree: str, required: Iterable[str], dataset: str | None = None,
               optional: Iterable[str] = ()) -> FileCheck:
    """Open one file, check its tree, branches and basket positions.

    Raises ``InputFileError`` (missing/corrupt file, missing tree) or ``MissingBranchError``
    with the file, tree, dataset and branches named.
    """
    where = f"{path} (dataset {dataset!r})" if dataset else path
    try:
        handle = uproot.open(path)
    except FileNotFoundError as exc:
        raise InputFileError(f"input file not found: {where}", path=path, dataset=dataset) from exc
    except Exception as exc:  # uproot raises many types for corrupt or truncated files
        raise InputFileError(f"cannot read ROOT file {where}: {one_line(exc)}", path=path, dataset=dataset) from exc
    with handle:
        return check_open_file(handle, path, tree, required, dataset, optional)


def check_open_file(handle: uproot.ReadOnlyDirectory, path: str, tree: str, required: Iterable[str],
                    dataset: str | None = None, optional: Iterable[str] = ()) -> FileCheck:
    """``check_file`` on a file already open (the manifest builder's scan checks the handle it reads)."""
    where = f"{path} (dataset {dataset!r})" if dataset else path
    try:
        ttree = handle[tree]
    except KeyError as exc:  # the tree is part of the input format: name the file's own
        trees = sorted({k for k, c in handle.classnames(cycle=False).items() if c == "TTree"})
        raise InputFileError(f"file {where} has no tree '{tree}' (its trees: {', '.join(trees) or 'none'}): "
                             "is the dataset's input format right?", path=path, dataset=dataset) from exc
    except Exception as exc:
        raise InputFileError(f"file {where} has no readable tree '{tree}': {one_line(exc)}", path=path,
                             dataset=dataset) from exc
    if not isinstance(ttree, uproot.TTree):
        raise InputFileError(f"'{tree}' in {where} is not a TTree", path=path, dataset=dataset)
    present = set(ttree.keys())
    missing = [b for b in required if b not in present]
    if missing:
        raise MissingBranchError(
            f"file {where}, tree '{tree}' lacks branch(es): {', '.join(missing)}", path=path, dataset=dataset)
    truncated = _branches_past_end_of_file(ttree, required, path)
    if truncated:
        raise InputFileError(f"file {where} is truncated: data of branch(es) {', '.join(truncated[:5])} "
                             "lie beyond its end", path=path, dataset=dataset)
    clusters = ttree.common_entry_offsets(filter_name=list(required)) if required else [0, ttree.num_entries]
    return FileCheck(int(ttree.num_entries), handle.file.fUUID, tuple(int(c) for c in clusters),
                     tuple(b for b in optional if b not in present))


def _branches_past_end_of_file(ttree: uproot.TTree, branches: Iterable[str], path: str) -> list[str]:
    """Branches whose baskets point past the end of a local file (an interrupted copy)."""
    if "://" in path or not os.path.isfile(path):
        return []
    size = os.path.getsize(path)
    bad = []
    for name in branches:
        branch = ttree[name]
        n = branch.num_baskets
        seeks = branch.member("fBasketSeek")[:n]
        nbytes = branch.member("fBasketBytes")[:n]
        if n and max(int(s) + int(b) for s, b in zip(seeks, nbytes, strict=True)) > size:
            bad.append(name)
    return bad
