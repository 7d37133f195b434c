"""The saved output of a run, as an artifact: its metadata (one builder), normalisation, the split of a
multi-model run, merging, ROOT export, the text summary, its file format, its configuration.

An output is a dict ``{"histograms": {name: hist.Hist}, "cutflow": {dataset: {step: {"events",
"weighted"}}}, "metadata": OutputMetadata as a dict}`` (``processors.run`` documents the
histograms).  It is saved as one zip file (``output.zip``) that runs no code when loaded and does
not depend on the hist or coffea version that wrote it:

* ``histograms/<name>.json`` and its ``.npy`` arrays: each histogram in the scikit-hep standard
  serialisation (``uhi.io.zip``; arrays read with ``allow_pickle=False``);
* ``content.json``: everything else (cutflow, metadata, a batch partial's bookkeeping).

Outputs saved by earlier versions as ``.coffea`` (an LZ4 pickle) load only when asked to
(``--allow-pickle``): a pickle runs whatever it holds, so load only your own.
"""

from __future__ import annotations

import itertools
import json
import logging
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path
from .errors import ConfigError, InputFileError, TthAdvError, one_line
from .inference import KEY_QUANTISATION

if TYPE_CHECKING:
    from .config import AnalysisConfig
    from .inputs.manifest import Manifest

log = logging.getLogger(__name__)

MASS_HISTOGRAM = "mgg"              # m_yy per dataset, region, category and systematic
CONTROL_HISTOGRAM = "mgg_control"   # the same for the template control selections (nominal only)
# Every selected diphoton event before any jet, lepton or score requirement (one category, nominal only): the
# base the background templates reweight to each category (ttH_adv.stats.templates)
INCLUSIVE_HISTOGRAM = "mgg_inclusive"
INCLUSIVE = "inclusive"             # its one category
# A multi-class model's class probabilities per dataset, region, category and class (nominal only)
PROBABILITY_HISTOGRAM = "probabilities"
PROBABILITY_BINS = 50
OUTPUT_FILE = "output.zip"
LEGACY_SUFFIX = ".coffea"
CONTENT = "content.json"
HISTOGRAM_FOLDER = "histograms/"
ZIP_MAGIC, LZ4_MAGIC = b"PK\x03\x04", b"\x04\x22\x4d\x18"


def labelled(name: str, label: str) -> str:
    """A scoring's histogram or dump column: ``name`` for a run's only model (empty label), else ``name@label``."""
    return f"{name}@{label}" if label else name


def category_slice(h, datasets, region: str, category: str, systematic: str = "nominal"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Summed m_yy bin values and variances of the given datasets (zeros for absent ones)."""
    size = h.axes["mgg"].size
    values, variances = np.zeros(size), np.zeros(size)
    for d in datasets:
        if d in h.axes["dataset"]:
            part = h[{"dataset": d, "region": region, "category": category, "systematic": systematic}]
            values += part.values()
            variances += part.variances()
    return values, variances


# --------------------------------------------------------------------------- metadata


@dataclass
class OutputMetadata:
    """What an output records of how it was made; a single run, a merge and a batch merge write the same keys."""

    config: dict | None                      # the whole effective analysis configuration (config_to_data)
    config_hash: str
    roles: dict[str, str]
    luminosity_pb: float | None
    events_read: dict[str, int]
    chunks: dict[str, list[str]]
    objects: dict[str, dict[str, int]]       # objects read and passing each object selection, per dataset
    entries_in_files: dict[str, int]
    files_processed: list[str]
    files_skipped: list[dict[str, str]]
    files_without_systematic_branches: list[str]
    executor: str
    systematics: str
    unblinded: bool
    model: dict | None
    categories: dict[str, list[float]]
    version: str
    wall_seconds: float
    workers: int | None = None
    chunksize: int | None = None
    aligned_chunks: bool | None = None
    maxchunks: int | None = None
    dump_dir: str | None = None
    scorings: dict[str, dict] = field(default_factory=dict)   # several models of one pass (a comparison)
    slices: int | None = None                # batch slices merged
    merged_from: list[str] = field(default_factory=list)      # the outputs a merge added
    dsids: dict[str, int] = field(default_factory=dict)       # each MC dataset's DSID (the manifest's)
    varied_roles: list[str] | None = None    # the roles whose MC filled the systematic variations (None: all MC)

    def to_dict(self) -> dict[str, Any]:
        """The metadata as the output holds them."""
        return asdict(self)


METADATA_KEYS = tuple(f.name for f in fields(OutputMetadata))
# Keys every output of a merge must share: adding histograms made otherwise would mix two analyses.
MUST_AGREE = ("config_hash", "systematics", "unblinded", "model", "categories", "scorings")


def merge_metadata(metas: list[dict], sources: list[str]) -> dict[str, Any]:
    """The metadata of outputs added together; refuses outputs whose configuration, model or roles differ."""
    from .config import first_difference

    first = metas[0]
    for key in MUST_AGREE:
        for other, source in zip(metas[1:], sources[1:], strict=True):
            if other.get(key) != first.get(key):
                where = first_difference(first.get("config"), other.get("config")) if key == "config_hash" else None
                raise TthAdvError(f"cannot merge {sources[0]} and {source}: their {key} differ"
                                  + (f" (configuration key {where!r})" if where else ""))
    roles: dict[str, str] = {}
    for meta in metas:
        for name, role in meta.get("roles", {}).items():
            if roles.setdefault(name, role) != role:
                raise TthAdvError(f"cannot merge: dataset {name!r} has role {roles[name]!r} in one output, "
                                  f"{role!r} in another")
    lumis = {m.get("luminosity_pb") for m in metas} - {None}
    if len(lumis) > 1:
        raise TthAdvError(f"cannot merge outputs of different luminosities {sorted(lumis)} pb^-1")

    def same(key: str) -> Any:
        values = [m.get(key) for m in metas]
        return values[0] if all(v == values[0] for v in values) else None

    merged = OutputMetadata(
        config=first.get("config"), config_hash=first["config_hash"], roles=roles,
        luminosity_pb=next(iter(lumis), None),
        events_read=_add_counts(m.get("events_read", {}) for m in metas),
        chunks={name: sorted({c for m in metas for c in m.get("chunks", {}).get(name, [])})
                for name in sorted({n for m in metas for n in m.get("chunks", {})})},
        objects={name: _add_counts(m["objects"][name] for m in metas if name in m.get("objects", {}))
                 for name in sorted({n for m in metas for n in m.get("objects", {})})},
        entries_in_files=_add_counts(m.get("entries_in_files", {}) for m in metas),
        files_processed=sorted({f for m in metas for f in m.get("files_processed", [])}),
        files_skipped=[s for m in metas for s in m.get("files_skipped", [])],
        files_without_systematic_branches=sorted({f for m in metas for f in m.get("files_without_systematic_branches",
                                                                                   [])}),
        executor=same("executor") or "merged", systematics=first["systematics"], unblinded=first["unblinded"],
        model=first.get("model"), categories=first.get("categories", {}), version=same("version") or "mixed",
        wall_seconds=float(sum(m.get("wall_seconds", 0.0) for m in metas)),
        workers=same("workers"), chunksize=same("chunksize"), aligned_chunks=same("aligned_chunks"),
        maxchunks=same("maxchunks"), dump_dir=same("dump_dir"), scorings=first.get("scorings", {}),
        slices=same("slices"), merged_from=list(sources),
        dsids={name: dsid for m in metas for name, dsid in m.get("dsids", {}).items()}, varied_roles=same("varied_roles"))
    return merged.to_dict()


def _add_counts(parts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for key, n in part.items():
            total[key] = total.get(key, 0) + n
    return total


def build_metadata(bookkeeping: dict, config: AnalysisConfig, manifest: Manifest, scorer: Any,
                   **run: Any) -> dict[str, Any]:
    """The metadata of an output (``OutputMetadata``): what its configuration and manifest say, then the run's facts.

    The one builder of a single run's, a batch merge's and every other output's metadata."""
    import ttH_adv

    from .config import config_hash, config_to_data

    return OutputMetadata(**bookkeeping, config=config_to_data(config), config_hash=config_hash(config),
                          roles=manifest.roles(), dsids=manifest.dsids(), luminosity_pb=manifest.luminosity_pb(),
                          model=model_metadata(scorer, manifest), categories=categories_metadata(config.categories),
                          version=ttH_adv.__version__, **run).to_dict()


def pop_bookkeeping(output: dict) -> dict:
    """Move the accumulated events-read, chunk and object-count records out of an output, for its metadata."""
    return {"events_read": dict(output.pop("events_read")),
            "chunks": {k: sorted(v) for k, v in output.pop("chunks").items()},
            "objects": {k: dict(v) for k, v in output.pop("objects", {}).items()}}


def categories_metadata(categories: dict) -> dict[str, list[float]]:
    """Score boundaries per channel, as the metadata hold them."""
    return {k: list(v) for k, v in categories.items()}


def model_metadata(scorer: Any, manifest: Manifest) -> dict | None:
    """A scored model in the output's metadata; warns when a model trained on all events scores its training datasets."""
    if scorer is None:
        return None
    info = scorer.info
    in_sample = sorted(set(info.training_datasets()) & set(manifest.datasets)) if info.trained_on_all_events else []
    if in_sample:
        log.warning("model %s was trained on all events of %s: their scores are in-sample (train k-fold models "
                    "for out-of-fold scores)", info.path, ", ".join(in_sample))
    quantisation = json.loads(info.metadata.get(KEY_QUANTISATION, "null"))
    return {"path": info.path, "sha256": info.sha256, "method": info.method, "lambda": info.lam,
            "n_folds": info.n_folds, "int8": quantisation and {k: quantisation[k] for k in ("kind", "parity")},
            "scores": "in-sample for " + ", ".join(in_sample) if in_sample else
            ("out-of-fold" if info.n_folds > 1 else "all-events model, no training dataset processed")}


# --------------------------------------------------------------------------- histograms


def normalise(output: dict, manifest: Manifest) -> dict:
    """Scale each MC dataset's histograms and weighted cutflow by L x sigma / sum of weights."""
    for h in output["histograms"].values():
        view = h.view(flow=True)
        for i, name in enumerate(h.axes["dataset"]):
            norm = manifest.datasets[name].norm
            view["value"][i] *= norm
            view["variance"][i] *= norm**2
    for name, steps in output["cutflow"].items():
        norm = manifest.datasets[name].norm
        for step in steps.values():
            step["weighted"] *= norm
    return output


def split_by_scoring(output: dict) -> dict[str, dict]:
    """One output per model of a run that scored several (``RunOptions.scorings``): its histograms as
    ``mgg``/``mgg_control``, its model and categories in the metadata, the cutflow and ``mgg_inclusive``
    shared."""
    meta = output["metadata"]
    outputs = {}
    for label, scoring in meta["scorings"].items():
        histograms = {name: output["histograms"][f"{name}@{label}"] for name in
                      (MASS_HISTOGRAM, CONTROL_HISTOGRAM, PROBABILITY_HISTOGRAM) if f"{name}@{label}" in output["histograms"]}
        histograms[INCLUSIVE_HISTOGRAM] = output["histograms"][INCLUSIVE_HISTOGRAM]
        outputs[label] = {"histograms": histograms, "cutflow": output["cutflow"],
                          "metadata": {**meta, "scorings": {}, "model": scoring["model"],
                                       "categories": scoring["categories"]}}
    return outputs


def merge_outputs(outputs: list[dict], sources: list[str] | None = None) -> dict:
    """Add the histograms and cutflows of several (normalised) outputs; their metadata merged
    (``ttH_adv.output.merge_metadata``: refused where configuration, model or roles differ)."""
    from coffea import processor

    sources = sources or [f"output {i + 1}" for i in range(len(outputs))]
    merged = processor.accumulate([{k: v for k, v in o.items() if k != "metadata"} for o in outputs])
    merged["metadata"] = merge_metadata([o["metadata"] for o in outputs], sources)
    return merged


def export_root(output: dict, path: str | Path) -> Path:
    """Write every m_yy histogram slice as TH1D ``<dataset>/<region>/<category>/<systematic>`` (the
    template control selections under ``control/``; a multi-class model's probabilities as TH1D
    ``probabilities/<dataset>/<region>/<category>/<class>``)."""
    import uproot

    path = Path(path)
    with atomic_path(path) as tmp, uproot.recreate(tmp) as f:
        for name, h in output["histograms"].items():
            if "mgg" not in h.axes.name:
                for d, r, c, k in itertools.product(*(h.axes[a] for a in ("dataset", "region", "category", "class"))):
                    f[f"{name}/{d}/{r}/{c}/{k}"] = h[{"dataset": d, "region": r, "category": c, "class": k}]
                continue
            prefix = "" if name == MASS_HISTOGRAM else f"{name.replace(MASS_HISTOGRAM + '_', '', 1)}/"
            for d in h.axes["dataset"]:
                for r in h.axes["region"]:
                    for c in h.axes["category"]:
                        for s in h.axes["systematic"]:
                            f[f"{prefix}{d}/{r}/{c}/{s}"] = h[{"dataset": d, "region": r, "category": c,
                                                                "systematic": s}]
    return path


def summary(output: dict) -> str:
    """A one-screen text summary: events, rate, cutflow, skipped files."""
    meta = output["metadata"]
    events = sum(meta["events_read"].values())
    rate = events / meta["wall_seconds"] if meta["wall_seconds"] else float("nan")
    lines = [f"processed {events:,} events from {len(meta['files_processed'])} files in {meta['wall_seconds']:.1f} s "
             f"({rate:,.0f} events/s, executor {meta['executor']})"]
    channels = sorted({s.split("_", 1)[1] for c in output["cutflow"].values() for s in c if s.startswith("TI_")})
    steps = ["all", "mass_window", *(s for r in ("TI", "NTNI") for s in (r, *(f"{r}_{c}" for c in channels)))]
    width = max(10, *(len(name) + 1 for name in output["cutflow"]))
    lines.append(f"{'dataset':<{width}}" + "".join(f"{s:>12}" for s in steps))
    for name, cutflow in sorted(output["cutflow"].items()):
        lines.append(f"{name:<{width}}" + "".join(f"{cutflow[s]['events']:>12,d}" for s in steps))
        if meta["roles"].get(name) != "data":
            lines.append(f"{'  yield':<{width}}" + "".join(f"{cutflow[s]['weighted']:>12.4g}" for s in steps))
    counts = meta.get("objects", {})
    if counts:
        columns = next(iter(counts.values())).keys()
        lines.append(f"{'objects':<{width}}" + "".join(f"{c.replace('_', ' '):>{max(12, len(c) + 2)}}" for c in columns))
        lines += [f"{name:<{width}}" + "".join(f"{n[c]:>{max(12, len(c) + 2)},d}" for c in columns)
                  for name, n in sorted(counts.items())]
    if meta["files_skipped"]:
        lines.append(f"SKIPPED {len(meta['files_skipped'])} bad file(s):")
        lines += [f"  {s['dataset']}: {s['reason']}" for s in meta["files_skipped"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the configuration downstream


def carried_config(carried: dict | None, given: str | Path | None, source: str) -> Any:
    """The analysis configuration of a stage's input: the one it carries, checked against a ``--config``
    given too (refused, naming the first differing key, where they disagree); an input that carries none
    (made by an earlier version) takes ``--config`` or the defaults."""
    from .config import config_from_data, config_to_data, first_difference, load_config

    if carried is None:
        return load_config(given)
    config = config_from_data(carried, f"the configuration {source} carries")
    if given is not None:
        own = config_to_data(config)
        # categories come from `run --categories` as often as from a file: the input's are compared as its own
        where = first_difference(own, {**config_to_data(load_config(given)), "categories": own["categories"]})
        if where:
            raise ConfigError(f"--config {given} disagrees with the configuration {source} was made with, at "
                              f"{where!r}: leave --config out (the input's own is used) or remake the input with it")
    return config


# --------------------------------------------------------------------------- file


def output_path(out: str | Path, write: bool = False) -> Path:
    """An output file from ``--out`` (``write``) or ``--histograms``/``--input``: a ``.zip`` path as given, else
    the folder's ``output.zip``; reading also takes an old ``.coffea`` file, or a folder holding only one."""
    path = Path(out)
    if path.suffix == LEGACY_SUFFIX:
        if write:
            raise ConfigError(f"--out {path}: outputs are saved as .zip (a .coffea file was the old pickle format)")
        return path
    if path.suffix == ".zip":
        return path
    legacy = path / f"output{LEGACY_SUFFIX}"
    return legacy if not write and legacy.is_file() and not (path / OUTPUT_FILE).is_file() else path / OUTPUT_FILE


def save_output(output: dict, path: str | Path) -> Path:
    """Save an output (or a batch partial) as one zip: histograms by uhi.io, the rest as JSON; atomically."""
    import uhi.io.zip as uhi_zip
    from hist import serialization

    path = Path(path)
    content = {k: v for k, v in output.items() if k != "histograms"}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, h in output.get("histograms", {}).items():
            uhi_zip.write(zf, HISTOGRAM_FOLDER + name, serialization.to_uhi(h))
        zf.writestr(CONTENT, json.dumps(content, default=_plain, allow_nan=True))
    return path


def _plain(value: Any) -> Any:
    """JSON for the numpy scalars, sets and accumulators an output's bookkeeping may hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"cannot save a {type(value).__name__} in an output")


def load_output(path: str | Path, allow_pickle: bool = False) -> dict:
    """An output written by ``save_output`` (no code runs); an old ``.coffea`` pickle only with ``allow_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"output file not found: {path} (an output of tth-adv run)", path=str(path))
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == LZ4_MAGIC:
        if not allow_pickle:
            raise InputFileError(f"{path} is an output of an earlier version, a pickle, which runs whatever it holds "
                                 "when loaded: give --allow-pickle only for a file you made yourself, then save it "
                                 "again (tth-adv merge --outputs OLD --out NEW.zip --allow-pickle)", path=str(path))
        from coffea.util import load

        log.warning("%s is an output of an earlier version (a pickle, which runs code when loaded): loading it; "
                    "save it again with this version to have the safe format", path)
        return load(str(path))
    if magic != ZIP_MAGIC:
        raise InputFileError(f"{path} is not an output of tth-adv run (neither its zip nor an old .coffea file)",
                             path=str(path))
    return _read_zip(path)


def _read_zip(path: Path) -> dict:
    import hist
    import uhi.io.zip as uhi_zip
    from hist import serialization

    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if CONTENT not in names:
                raise InputFileError(f"{path} is a zip but not an output of tth-adv run (no {CONTENT})", path=str(path))
            output = json.loads(zf.read(CONTENT))
            histograms = [n[len(HISTOGRAM_FOLDER):-len(".json")] for n in names
                          if n.startswith(HISTOGRAM_FOLDER) and n.endswith(".json")]
            output["histograms"] = {name: hist.Hist(serialization.from_uhi(uhi_zip.read(zf, HISTOGRAM_FOLDER + name)))
                                    for name in sorted(histograms)}
    except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
        raise InputFileError(f"{path} is damaged: {type(exc).__name__}: {one_line(exc)}", path=str(path)) from None
    return output
