"""The datasets manifest: a coffea-style fileset with validated per-dataset metadata.

Format (JSON or YAML), paths relative to the manifest's folder::

    {"ttH": {"files": {"ttH/ttH_000.root": "mini"},          # or a list plus "treename"
             "metadata": {"is_data": false, "kind": "signal", "xsec_pb": 0.00115,
                          "sum_weights": 14184.6, "luminosity_pb": 139000.0, "year": "run2"}}}

Every problem in a manifest is collected and reported at once, naming dataset and key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..documents import read_document
from ..errors import ManifestError
from .samples import KINDS, ROLE_KIND, ROLES, load_catalogue

DATASET_KEYS = {"files", "treename", "metadata"}
METADATA_KEYS = {"is_data", "kind", "role", "xsec_pb", "sum_weights", "luminosity_pb", "year", "n_events", "dsid",
                 "format"}


def default_role(kind: Any, dsid: Any) -> str | None:
    """The role where a manifest gives none: from the kind, and for a background from its DSID in the catalogue."""
    if kind in ("data", "signal"):
        return kind
    entry = load_catalogue().get(dsid) if isinstance(dsid, int) else None
    return entry.role if entry and ROLE_KIND[entry.role] == "background" else None


def normalisation(metadata: dict[str, Any]) -> float:
    """Per-event factor luminosity x cross-section / sum of weights from dataset metadata (1 for data)."""
    if metadata.get("is_data", False):
        return 1.0
    return metadata["luminosity_pb"] * metadata["xsec_pb"] / metadata["sum_weights"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    files: dict[str, str | None]  # absolute path -> tree name (None: the input format's tree)
    is_data: bool
    kind: str
    role: str = ""  # one of ROLES; load_manifest fills it from kind where the manifest gives none
    xsec_pb: float | None = None
    sum_weights: float | None = None
    luminosity_pb: float | None = None
    year: str | None = None
    n_events: int | None = None
    dsid: int | None = None
    format: str | None = None  # the input format profile (ttH_adv/data/formats); None: the configuration's default

    @property
    def norm(self) -> float:
        """Per-event normalisation factor luminosity x cross-section / sum of weights (1 for data)."""
        return normalisation(self.metadata())

    def metadata(self) -> dict[str, Any]:
        """Metadata as handed to the processor for every chunk of this dataset."""
        return {k: getattr(self, k) for k in sorted(METADATA_KEYS) if getattr(self, k) is not None}


@dataclass(frozen=True)
class Manifest:
    path: Path
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)

    def fileset(self) -> dict[str, dict]:
        """The coffea fileset (absolute paths) for ``processor.Runner``."""
        return {name: {"files": dict(d.files), "metadata": d.metadata()} for name, d in self.datasets.items()}

    def roles(self) -> dict[str, str]:
        """Each dataset's role (data, signal, resonant, continuum)."""
        return {name: d.role for name, d in self.datasets.items()}

    def dsids(self) -> dict[str, int]:
        """Each MC dataset's DSID, where the manifest gives one."""
        return {name: d.dsid for name, d in self.datasets.items() if d.dsid is not None}

    def luminosity_pb(self) -> float | None:
        """The integrated luminosity the datasets stand for (the largest one declared; None if none is)."""
        values = [d.luminosity_pb for d in self.datasets.values() if d.luminosity_pb]
        return max(values) if values else None

    def select(self, names: list[str]) -> Manifest:
        """A manifest with only the named datasets."""
        unknown = [n for n in names if n not in self.datasets]
        if unknown:
            raise ManifestError(f"{self.path}: unknown dataset(s) {unknown}; known: {sorted(self.datasets)}")
        return Manifest(self.path, {n: self.datasets[n] for n in names})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _files(name: str, entry: dict, base: Path, problems: list[str], check_files: bool) -> dict[str, str]:
    raw = entry.get("files")
    tree = entry.get("treename")  # None: the tree of the dataset's input format
    if isinstance(raw, list):
        raw = {f: tree for f in raw}
    if not isinstance(raw, dict) or not raw:
        problems.append(f"dataset '{name}': 'files' must be a non-empty list or mapping path -> tree")
        return {}
    files = {}
    for rel, tree_name in raw.items():
        path = Path(rel) if Path(rel).is_absolute() or "://" in rel else base / rel
        if check_files and "://" not in rel and not path.is_file():
            problems.append(f"dataset '{name}': file not found: {path}")
        if tree_name is not None and not isinstance(tree_name, str):
            problems.append(f"dataset '{name}': tree name for {rel} must be a string")
        files[str(path)] = tree_name
    return files


def _metadata(name: str, meta: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(meta, dict):
        problems.append(f"dataset '{name}': 'metadata' must be a mapping")
        return {}
    for key in sorted(set(meta) - METADATA_KEYS):
        problems.append(f"dataset '{name}': unknown metadata key '{key}' (allowed: {sorted(METADATA_KEYS)})")
    is_data = meta.get("is_data")
    if not isinstance(is_data, bool):
        problems.append(f"dataset '{name}': metadata 'is_data' must be true or false")
    kind = meta.get("kind")
    if kind not in KINDS:
        problems.append(f"dataset '{name}': metadata 'kind' must be one of {list(KINDS)}, got {kind!r}")
    elif isinstance(is_data, bool) and (kind == "data") != is_data:
        problems.append(f"dataset '{name}': kind '{kind}' contradicts is_data={is_data}")
    role = meta.get("role", default_role(kind, meta.get("dsid")))
    if role is None and kind in KINDS:
        problems.append(f"dataset '{name}': a background needs metadata 'role': resonant (H -> yy modes), "
                        "continuum (non-resonant yy MC) or reducible (y+jet / jet+jet MC)")
    elif "role" in meta and role not in ROLES:
        problems.append(f"dataset '{name}': metadata 'role' must be one of {list(ROLES)}, got {role!r}")
    elif kind in KINDS and ROLE_KIND.get(role) != kind:
        problems.append(f"dataset '{name}': role '{role}' contradicts kind '{kind}'")
    if "format" in meta and not isinstance(meta["format"], str):
        problems.append(f"dataset '{name}': metadata 'format' must be an input format's name, got {meta['format']!r}")
    if is_data is True:
        for key in ("xsec_pb", "sum_weights"):
            if key in meta:
                problems.append(f"dataset '{name}': data sample must not have '{key}'")
    elif is_data is False:
        for key in ("xsec_pb", "sum_weights", "luminosity_pb"):
            if key not in meta:
                problems.append(f"dataset '{name}': MC sample needs '{key}'")
            elif not _is_number(meta[key]) or meta[key] <= 0:
                problems.append(f"dataset '{name}': '{key}' must be a positive number, got {meta[key]!r}")
    return {**{k: meta[k] for k in METADATA_KEYS & set(meta)}, "role": role}


def load_manifest(path: str | Path, *, check_files: bool = True) -> Manifest:
    """Load and validate a datasets manifest; raise ``ManifestError`` listing every problem."""
    path = Path(path)
    raw = read_document(path, "a datasets manifest (tth-adv manifest writes one)", error=ManifestError)
    if not raw:
        raise ManifestError(f"{path}: a manifest is a non-empty mapping of dataset name -> entry")
    problems: list[str] = []
    datasets = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            problems.append(f"dataset '{name}': entry must be a mapping with 'files' and 'metadata'")
            continue
        for key in sorted(set(entry) - DATASET_KEYS):
            problems.append(f"dataset '{name}': unknown key '{key}' (allowed: {sorted(DATASET_KEYS)})")
        files = _files(name, entry, path.resolve().parent, problems, check_files)
        meta = _metadata(name, entry.get("metadata"), problems)
        if files and "is_data" in meta and meta.get("kind") in KINDS:
            datasets[name] = DatasetInfo(name=name, files=files, **meta)
    if problems:
        if len(problems) == 1:
            raise ManifestError(f"{path}: {problems[0]}")
        raise ManifestError(f"{path}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    return Manifest(path, datasets)


def save_manifest(entries: dict[str, dict], path: str | Path) -> Path:
    """Write a manifest's datasets ({name: {"files": {path: tree}, "metadata": {...}}}) as JSON, atomically: the one
    writer of the format (the generator, ``tth-adv manifest``)."""
    return write_text(path, json.dumps(entries, indent=2) + "\n")
