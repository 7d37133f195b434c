"""A datasets manifest from real files: the ATLAS Open Data releases and DAOD_PHYSLITE (``tth-adv manifest``).

``build_manifest`` takes folders (searched recursively for ``*.root``), files or globs.  Each file's
input format (``ttH_adv.inputs.objects``, the configuration's ``formats``) is the one whose tree and
branches it has, or the one given; one log line per dataset says which.  Then:

* data files -- named ``data_*`` (2020 release), ``*_data15_period*`` / ``*_data16_*`` (2025
  release), or PHYSLITE files whose EventInfo says so -- become one dataset ``data``;
* MC files are grouped by DSID: from the name (``mc_<DSID>.<process>...``, also inside the 2025
  release's ``ODEO_FEB2025_v0_<skim>_mc_<DSID>.<process>.<skim>.root``), else from the file's own
  DSID branch (``channelNumber``; PHYSLITE: EventInfo's ``mcChannelNumber``); name and role come
  from the format's packaged DSID catalogue, ``--catalogue`` files or ``roles`` (``{DSID or file:
  role}``); an unknown DSID is an error naming ``--role``;
* the cross-section is the product of the format's ``normalisation.cross_section`` branches
  (2020: ``XSection``; 2025: ``xsec x kfac x filteff``) or ``--xsec DSID=PB`` (PHYSLITE carries
  none: a missing one is an error naming the DSID and the option);
* the sum of weights: a flat format's ``normalisation.sum_of_weights`` branch holds the DSID's sum
  of mcWeight in every entry of every file, so the files of one DSID must agree (to float32
  precision) and the common value is taken -- never a sum over files; PHYSLITE files carry their
  own events' weights, so their ``mcEventWeights[0]`` are summed over the DSID's files;
* remote paths (``root://``, ``https://``) are listed without being opened: a remote MC file takes
  its cross-section and sum of weights from a local file of the same DSID.
"""

from __future__ import annotations

import functools
import glob
import logging
import re
from pathlib import Path

import numpy as np
import uproot

from ..config import AnalysisConfig
from ..errors import InputFileError, ManifestError, one_line
from .objects import reader_of, required_branches
from .samples import ROLE_KIND, ROLES, CatalogueEntry, load_catalogue
from .scans import SUM_WEIGHTS_RTOL, ScannedFile
from .schema import check_open_file

log = logging.getLogger(__name__)

MC_FILE = re.compile(r"(?:^|_)mc_(\d+)\.(?:([^.]+)\.)?")
DATA_FILE = re.compile(r"(?:^data|_data\d\d_)", re.IGNORECASE)
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


def detect_format(handle: uproot.ReadOnlyDirectory, config: AnalysisConfig, path: str) -> str:
    """The input format whose tree and data branches the file has (the first such, in the configuration's order)."""
    keys = set(handle.keys(cycle=False))
    lacking = {}
    for name, fmt in config.formats.items():
        if fmt.branches.tree in keys:
            missing = sorted(set(required_branches(fmt, is_data=True)) - set(handle[fmt.branches.tree].keys()))
            if not missing:
                return name
            lacking[name] = missing
    closest = "; ".join(f"{name} lacks {', '.join(m[:6])}{' ...' if len(m) > 6 else ''}" for name, m in lacking.items())
    raise ManifestError(f"{path}: no input format matches its trees {sorted(keys)[:8]}"
                        f"{' (' + closest + ')' if closest else ''}; known formats: {sorted(config.formats)}; name "
                        "one with --format, or add a profile under the configuration's 'formats'")


def _name_facts(path: str) -> tuple[bool, int | None, str | None]:
    """(data?, DSID, process) as far as the file's name says."""
    name = path.rsplit("/", 1)[-1]
    match = MC_FILE.search(name)
    is_data = bool(DATA_FILE.search(name)) and not match
    return is_data, (int(match.group(1)) if match else None), (match.group(2) if match else None)


def scan_file(path: str, config: AnalysisConfig, format_name: str | None = None) -> ScannedFile:
    """Format, data or MC, DSID, entries, cross-section and sum of weights of one file."""
    is_data, dsid, process = _name_facts(path)
    if "://" in path:
        if not is_data and dsid is None:
            raise ManifestError(f"{path}: a remote file is not opened, so its name must say data or mc_<DSID>")
        return ScannedFile(path, format_name or config.default_format, is_data, dsid, process)
    try:
        with uproot.open(path) as handle:
            name = format_name or detect_format(handle, config, path)
            fmt = config.format(name)
            check_open_file(handle, path, fmt.branches.tree, required_branches(fmt, is_data))  # as run checks it
            tree = handle[fmt.branches.tree]
            scanned = ScannedFile(path, name, is_data, dsid, process, int(tree.num_entries))
            reader_of(fmt).scan(scanned, tree, fmt)
    except ManifestError:
        raise
    except InputFileError as exc:  # run's file check: its message names file, tree and branches
        raise ManifestError(str(exc)) from None
    except Exception as exc:
        raise ManifestError(f"{path}: cannot read it as an input file: {one_line(exc)}") from exc
    return scanned


@functools.cache
def _catalogue(name: str | None, extra: tuple[str, ...]) -> dict[int, CatalogueEntry]:
    catalogue = dict(load_catalogue(name)) if name else {}
    for path in extra:
        catalogue.update(load_catalogue(path=path))
    return catalogue


def _role_for(scanned: ScannedFile, catalogue: dict[int, CatalogueEntry], roles: dict[str, str]
              ) -> tuple[str, str] | None:
    """(dataset name, role) of an MC file: a --role override first, then the catalogue; None where neither says."""
    keys = [scanned.path, scanned.path.rsplit("/", 1)[-1], str(scanned.dsid)]
    override = next((roles[k] for k in keys if k in roles), None)
    entry = catalogue.get(scanned.dsid)
    if override is None and entry is None:
        return None
    name = entry.name if entry else (scanned.process or f"mc_{scanned.dsid}")
    return name, override or entry.role


def _unknown_dsids(unknown: list[ScannedFile]) -> ManifestError:
    """One error naming every DSID no catalogue or --role places, with the options that would."""
    dsids = sorted({s.dsid for s in unknown})
    first = {s.dsid: s for s in reversed(unknown)}
    files = "; ".join(f"{d} ({first[d].path.rsplit('/', 1)[-1]})" for d in dsids[:6]) + (" ..." if len(dsids) > 6
                                                                                        else "")
    return ManifestError(f"DSID(s) not in the {unknown[0].format} DSID catalogue: {files}; say what each is with "
                         f"{' '.join(f'--role {d}=ROLE' for d in dsids)} (ROLE one of {', '.join(ROLES)})")


def build_manifest(inputs: list[str], luminosity_pb: float | None, roles: dict[str, str] | None = None, *,
                   format_name: str | None = None, xsecs: dict[int, float] | None = None,
                   catalogues: tuple[str, ...] = (), config: AnalysisConfig) -> dict[str, dict]:
    """The manifest (as written to JSON: absolute paths) for the given files, in ``config``'s input formats."""
    roles, xsecs = roles or {}, xsecs or {}
    bad = {k: r for k, r in roles.items() if r not in ROLES}
    if bad:
        raise ManifestError(f"--role takes one of {list(ROLES)}, got {bad}")
    if format_name is not None:
        config.format(format_name)  # an unknown one is named before any file is opened
    scanned = [scan_file(p, config, format_name) for p in find_files(inputs)]
    groups: dict[str, list[ScannedFile]] = {}
    role_of: dict[str, str] = {}
    placed = {s.path: ("data", "data") if s.is_data else
              _role_for(s, _catalogue(config.format(s.format).catalogue, tuple(catalogues)), roles) for s in scanned}
    unknown = [s for s in scanned if placed[s.path] is None]
    if unknown:
        raise _unknown_dsids(unknown)
    for s in scanned:
        name, role = placed[s.path]
        groups.setdefault(name, []).append(s)
        if role_of.setdefault(name, role) != role:
            raise ManifestError(f"dataset {name!r}: files with roles {role_of[name]!r} and {role!r}")
    if luminosity_pb is None and any(r != "data" for r in role_of.values()):
        raise ManifestError("MC files found: give the integrated luminosity of the data with --luminosity-pb")
    _check_cross_sections(groups, role_of, xsecs)
    manifest = {name: _entry(name, files, role_of[name], config, luminosity_pb, xsecs)
                for name, files in sorted(groups.items())}
    how = "given with --format" if format_name else "detected from its tree and branches"
    for name, entry in manifest.items():
        log.info("dataset %s: input format %s, %s (%d file(s))", name, entry["metadata"]["format"], how,
                 len(entry["files"]))
    return manifest


def _check_cross_sections(groups: dict[str, list[ScannedFile]], role_of: dict[str, str],
                          xsecs: dict[int, float]) -> None:
    """Every MC DSID has a cross-section, from its files or --xsec; one error naming all that lack one."""
    lacking = sorted({f.dsid for name, files in groups.items() if role_of[name] != "data" for f in files
                      if f.entries and f.xsec_pb is None and f.dsid not in xsecs})
    unused = sorted(set(xsecs) - {f.dsid for files in groups.values() for f in files})
    if lacking:
        raise ManifestError(f"DSID(s) {', '.join(map(str, lacking))} have no cross-section in their files (PHYSLITE "
                            f"carries none): give each with {' '.join(f'--xsec {d}=PB' for d in lacking)}")
    if unused:
        raise ManifestError(f"--xsec given for DSID(s) {unused} that no input file has")


def _entry(name: str, files: list[ScannedFile], role: str, config: AnalysisConfig, luminosity_pb: float | None,
           xsecs: dict[int, float]) -> dict:
    formats = sorted({f.format for f in files})
    if len(formats) > 1:
        raise ManifestError(f"dataset {name!r} mixes input formats {formats} (e.g. {files[0].path})")
    fmt = config.format(formats[0])
    entries = [f.entries for f in files]
    metadata: dict = {"is_data": role == "data", "kind": ROLE_KIND[role], "role": role, "year": "run2",
                      "format": formats[0]}
    if all(e is not None for e in entries):
        metadata["n_events"] = int(sum(entries))
    if luminosity_pb is not None:
        metadata["luminosity_pb"] = float(luminosity_pb)
    if role != "data":
        local = [f for f in files if f.sum_weights is not None]
        if not local:
            raise ManifestError(f"dataset {name!r}: no local, non-empty file to read its cross-section and sum of "
                                "weights from")
        dsid = local[0].dsid
        if fmt.normalisation.sum_of_weights:  # every file holds the DSID total: they must agree
            for f in local[1:]:
                for key in ("xsec_pb", "sum_weights"):
                    if not np.isclose(getattr(f, key), getattr(local[0], key), rtol=SUM_WEIGHTS_RTOL):
                        raise ManifestError(f"dataset {name!r}: {key} {getattr(f, key)} in {f.path} differs from "
                                            f"{getattr(local[0], key)} in {local[0].path} (one DSID, one value)")
            sum_weights = local[0].sum_weights
        else:  # each file holds its own events' weights
            sum_weights = float(sum(f.sum_weights for f in local))
        xsec = xsecs.get(dsid, local[0].xsec_pb)
        if xsec is None:
            raise ManifestError(f"dataset {name!r}: DSID {dsid} has no cross-section in its {formats[0]} files: give "
                                f"it with --xsec {dsid}=PB")
        metadata.update({"xsec_pb": float(xsec), "sum_weights": sum_weights, "dsid": dsid})
    return {"files": {f.path: fmt.branches.tree for f in files}, "metadata": metadata}


def summary_table(manifest: dict[str, dict]) -> str:
    """Dataset, role, format, files, entries, cross-section and sum of weights, one line each."""
    width = max(12, *(len(name) + 2 for name in manifest))
    lines = [f"{'dataset':<{width}}{'role':<11}{'format':<14}{'files':>6}{'entries':>12}{'xsec [pb]':>12}"
             f"{'sum of weights':>16}"]
    for name, entry in manifest.items():
        m = entry["metadata"]
        xsec = f"{m['xsec_pb']:.4g}" if "xsec_pb" in m else "-"
        sumw = f"{m['sum_weights']:.6g}" if "sum_weights" in m else "-"
        entries = f"{m['n_events']:,}" if "n_events" in m else "remote"
        lines.append(f"{name:<{width}}{m['role']:<11}{m.get('format', ''):<14}{len(entry['files']):>6}{entries:>12}"
                     f"{xsec:>12}{sumw:>16}")
    return "\n".join(lines)
