"""A datasets manifest from ROOT files laid out like the ATLAS Open Data 13 TeV GamGam release.

``build_manifest`` takes folders (searched recursively for ``*.root``), files or globs:

* data files (``data_A.GamGam.root`` ...; any name starting with ``data``) become one dataset
  with role ``data``;
* MC files are grouped by DSID, read from the name (``mc_<DSID>.<process>...``) or else from
  the first entry of ``channelNumber``; name and role come from the packaged catalogue
  (``ttH_adv/data/opendata_gamgam.yaml``) or from ``roles`` (``{DSID or file: role}``); an
  unknown DSID is an error naming the file;
* ``xsec_pb`` comes from the ``XSection`` branch and ``sum_weights`` from ``SumWeights``.  In
  the release (and the generator) ``SumWeights`` holds the sum of ``mcWeight`` over the whole
  DSID, the same in every entry of every file of that DSID, so the files of one DSID must agree
  (to float32 precision) and the common value is taken -- never a sum over files;
* remote paths (``root://``, ``https://``) are listed without being opened: a remote MC file
  takes its cross-section and sum of weights from a local file of the same DSID.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import uproot

from .errors import ManifestError
from .samples import ROLE_KIND, ROLES, CatalogueEntry, load_catalogue

MC_FILE = re.compile(r"^mc_(\d+)\.(?:([^.]+)\.)?")
DATA_FILE = re.compile(r"^data", re.IGNORECASE)
SUM_WEIGHTS_RTOL = 1e-6  # SumWeights is float32 in the files


@dataclass
class ScannedFile:
    path: str
    is_data: bool
    dsid: int | None
    process: str | None             # from the file name, for DSIDs outside the catalogue
    entries: int | None = None      # None: a remote file, not opened
    xsec_pb: float | None = None
    sum_weights: float | None = None


def find_files(inputs: list[str]) -> list[str]:
    """ROOT files under folders (recursively), matching globs, or named; remote paths as given."""
    found: list[str] = []
    for item in inputs:
        if "://" in item:
            found.append(item)
        elif Path(item).is_dir():
            found += sorted(str(p) for p in Path(item).rglob("*.root"))
        elif any(c in item for c in "*?["):
            found += sorted(glob.glob(item, recursive=True))
        elif Path(item).is_file():
            found.append(str(Path(item)))
        else:
            raise ManifestError(f"manifest input not found: {item}")
    if not found:
        raise ManifestError(f"no ROOT files found in {inputs}")
    return list(dict.fromkeys(str(Path(f).resolve()) if "://" not in f else f for f in found))


def scan_file(path: str, tree: str) -> ScannedFile:
    """Data or MC, DSID, entries, cross-section and sum of weights of one file."""
    name = path.rsplit("/", 1)[-1]
    match = MC_FILE.match(name)
    is_data = bool(DATA_FILE.match(name)) and not match
    dsid = int(match.group(1)) if match else None
    process = match.group(2) if match else None
    if "://" in path:
        if not is_data and dsid is None:
            raise ManifestError(f"{path}: a remote file is not opened, so its name must say data_* or mc_<DSID>.*")
        return ScannedFile(path, is_data, dsid, process)
    try:
        with uproot.open(path) as f:
            t = f[tree]
            entries, branches = int(t.num_entries), set(t.keys())
            first = {b: t[b].array(entry_stop=1, library="np") for b in ("channelNumber", "XSection", "SumWeights")
                     if b in branches} if entries else {}
            sums = t["SumWeights"].array(library="np") if "SumWeights" in branches and not is_data else None
    except Exception as exc:
        raise ManifestError(f"{path}: cannot read tree '{tree}': {exc}") from exc
    if not is_data and dsid is None:
        if "channelNumber" not in first:
            raise ManifestError(f"{path}: neither data_* nor mc_<DSID>.* and no channelNumber branch: "
                                "give its role with --role FILE=ROLE")
        dsid = int(first["channelNumber"][0])
    scanned = ScannedFile(path, is_data, dsid, process, entries)
    if not is_data and entries:
        if "XSection" not in first or sums is None:
            raise ManifestError(f"{path}: MC file without XSection / SumWeights branches")
        if not np.allclose(sums, sums[0], rtol=SUM_WEIGHTS_RTOL):
            raise ManifestError(f"{path}: SumWeights differs between entries; expected the DSID total in every entry")
        scanned.xsec_pb, scanned.sum_weights = float(first["XSection"][0]), float(sums[0])
    return scanned


def _role_for(scanned: ScannedFile, catalogue: dict[int, CatalogueEntry], roles: dict[str, str]) -> tuple[str, str]:
    """(dataset name, role) of an MC file: a --role override first, then the catalogue."""
    keys = [scanned.path, scanned.path.rsplit("/", 1)[-1], str(scanned.dsid)]
    override = next((roles[k] for k in keys if k in roles), None)
    entry = catalogue.get(scanned.dsid)
    if override is None and entry is None:
        raise ManifestError(f"{scanned.path}: DSID {scanned.dsid} is not in the Open Data GamGam catalogue; "
                            f"say what it is with --role {scanned.dsid}=ROLE (one of {', '.join(ROLES)})")
    name = entry.name if entry else (scanned.process or f"mc_{scanned.dsid}")
    return name, override or entry.role


def build_manifest(inputs: list[str], luminosity_pb: float | None, tree: str = "mini",
                   roles: dict[str, str] | None = None) -> dict[str, dict]:
    """The manifest (as written to JSON: absolute paths) for the given files."""
    roles = roles or {}
    bad = {k: r for k, r in roles.items() if r not in ROLES}
    if bad:
        raise ManifestError(f"--role takes one of {list(ROLES)}, got {bad}")
    catalogue = load_catalogue()
    scanned = [scan_file(p, tree) for p in find_files(inputs)]
    groups: dict[str, list[ScannedFile]] = {}
    role_of: dict[str, str] = {}
    for s in scanned:
        name, role = ("data", "data") if s.is_data else _role_for(s, catalogue, roles)
        groups.setdefault(name, []).append(s)
        if role_of.setdefault(name, role) != role:
            raise ManifestError(f"dataset {name!r}: files with roles {role_of[name]!r} and {role!r}")
    if luminosity_pb is None and any(r != "data" for r in role_of.values()):
        raise ManifestError("MC files found: give the integrated luminosity of the data with --luminosity-pb")
    return {name: _entry(name, files, role_of[name], tree, luminosity_pb) for name, files in sorted(groups.items())}


def _entry(name: str, files: list[ScannedFile], role: str, tree: str, luminosity_pb: float | None) -> dict:
    entries = [f.entries for f in files]
    metadata: dict = {"is_data": role == "data", "kind": ROLE_KIND[role], "role": role, "year": "run2"}
    if all(e is not None for e in entries):
        metadata["n_events"] = int(sum(entries))
    if luminosity_pb is not None:
        metadata["luminosity_pb"] = float(luminosity_pb)
    if role != "data":
        local = [f for f in files if f.sum_weights is not None]
        if not local:
            raise ManifestError(f"dataset {name!r}: no local, non-empty file to read XSection and SumWeights from")
        for f in local[1:]:
            for key in ("xsec_pb", "sum_weights"):
                if not np.isclose(getattr(f, key), getattr(local[0], key), rtol=SUM_WEIGHTS_RTOL):
                    raise ManifestError(f"dataset {name!r}: {key} {getattr(f, key)} in {f.path} differs from "
                                        f"{getattr(local[0], key)} in {local[0].path} (one DSID, one value)")
        metadata.update({"xsec_pb": local[0].xsec_pb, "sum_weights": local[0].sum_weights, "dsid": local[0].dsid})
    return {"files": {f.path: tree for f in files}, "metadata": metadata}


def summary_table(manifest: dict[str, dict]) -> str:
    """Dataset, role, files, entries, cross-section and sum of weights, one line each."""
    lines = [f"{'dataset':<12}{'role':<11}{'files':>6}{'entries':>12}{'xsec [pb]':>12}{'sum of weights':>16}"]
    for name, entry in manifest.items():
        m = entry["metadata"]
        xsec = f"{m['xsec_pb']:.4g}" if "xsec_pb" in m else "-"
        sumw = f"{m['sum_weights']:.6g}" if "sum_weights" in m else "-"
        entries = f"{m['n_events']:,}" if "n_events" in m else "remote"
        lines.append(f"{name:<12}{m['role']:<11}{len(entry['files']):>6}{entries:>12}{xsec:>12}{sumw:>16}")
    return "\n".join(lines)
