"""Feature dumps: one parquet file per processed chunk, read back as one dataset.

File names are derived from the chunk (dataset / input file / entry range / variation), so
two workers never collide, a retried chunk overwrites its own file rather than adding a
second copy, and every file is written to a temporary name and renamed when complete.

Columns: every feature of ``ttH_adv.event.features`` (all named sets), ``mgg``, ``weight``
(normalised: mcWeight x scale factors x L x sigma / sum of weights; 1 for data), one
``weight_<variation>`` column per weight systematic, ``region`` (TI/NTNI), ``channel``
(had/lep/none), ``control`` (the channel whose template control selection holds an event that
is in no channel, else none), ``category``, ``dataset``, ``role`` (the manifest's sample role),
``eventNumber``, ``systematic`` (``nominal`` or an object variation, whose rows hold the
shifted features), and ``score`` when a model ran (``score@<label>`` per model when several
did): the out-of-fold score of events in a channel or a template control selection, NaN for the
others (they are never categorised, so never scored).  Each file's parquet schema metadata hold its provenance (``ttH_adv.config_hash``,
``ttH_adv.model_sha256``, ``ttH_adv.feature_set_version``, ``ttH_adv.version``); ``read_dump``
refuses a folder that mixes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .errors import InputFileError, TthAdvError
from .output import labelled

PROVENANCE_PREFIX = "ttH_adv."  # schema-metadata keys of a dump file's provenance


def chunk_file(dump_dir: str | Path, dataset: str, filename: str, start: int, stop: int, systematic: str) -> Path:
    """The parquet path of one chunk's rows."""
    tag = hashlib.sha1(filename.encode()).hexdigest()[:8]
    return Path(dump_dir) / dataset / f"{Path(filename).stem}-{tag}_{start}-{stop}_{systematic}.parquet"


def provenance(config: Any, model_sha256: str | None) -> dict[str, str]:
    """What made a dump file, kept in its parquet schema metadata: configuration, model, feature sets, version."""
    from . import __version__
    from .config import config_hash, config_to_data
    from .event.features import FEATURE_SET_VERSION

    return {"config_hash": config_hash(config), "config": json.dumps(config_to_data(config), sort_keys=True),
            "model_sha256": model_sha256 or "none",
            "feature_set_version": json.dumps(FEATURE_SET_VERSION, sort_keys=True), "version": __version__}


def write_chunk(dump_dir: str | Path, info: Any, selection: Any, raw_weights: np.ndarray,
                event_number: np.ndarray, systematic: str, weight_factors: dict[str, Any],
                made_by: dict[str, str] | None = None) -> Path:
    """Write the selected events of one chunk and variation (``made_by``: its provenance); returns the file."""
    n = int(selection.passed.sum())
    columns: dict[str, Any] = {name: np.asarray(v, dtype=np.float32) for name, v in selection.features.items()}
    weight = raw_weights * info.norm
    columns["mgg"] = selection.mass[selection.passed].astype(np.float32)
    columns["weight"] = weight
    for name, factor in weight_factors.items():  # per selected event: the weight variations' multipliers
        columns[f"weight_{name}"] = weight * factor
    columns["region"] = np.where(selection.is_ti[selection.passed], "TI", "NTNI")
    columns["channel"] = np.asarray(selection.channel, dtype=str)
    columns["control"] = np.asarray(selection.control, dtype=str)
    columns["category"] = np.asarray(selection.categories.get("", selection.channel), dtype=str)
    columns["dataset"] = np.full(n, info.dataset)
    columns["role"] = np.full(n, info.role)
    columns["eventNumber"] = np.asarray(event_number, dtype=np.int64)
    columns["systematic"] = np.full(n, systematic)
    for label, score in selection.scores.items():  # "score", or "score@<label>" for each of several models
        columns[labelled("score", label)] = np.asarray(score, dtype=np.float32)
    path = chunk_file(dump_dir, info.dataset, info.filename, info.entry_start, info.entry_stop, systematic)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    table = pa.table(columns)
    if made_by:
        table = table.replace_schema_metadata({PROVENANCE_PREFIX + k: v for k, v in made_by.items()})
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_provenance(path: str | Path) -> dict[str, str]:
    """The provenance of one dump file (empty for files written before it was recorded)."""
    metadata = pq.read_schema(path).metadata or {}
    return {k.decode()[len(PROVENANCE_PREFIX):]: v.decode() for k, v in metadata.items()
            if k.decode().startswith(PROVENANCE_PREFIX)}


def check_one_provenance(dump_dir: str | Path, files: list[str]) -> dict[str, str]:
    """The dump's common provenance; ``TthAdvError`` naming the difference if its files disagree."""
    groups: dict[tuple, list[str]] = {}
    for f in files:
        groups.setdefault(tuple(sorted(read_provenance(f).items())), []).append(f)
    if len(groups) > 1:
        (a, files_a), (b, files_b) = list(groups.items())[:2]
        differ = sorted(k for k in dict(a).keys() | dict(b).keys() if dict(a).get(k) != dict(b).get(k))
        raise TthAdvError(f"feature dump {dump_dir} mixes {len(groups)} provenances (differing in {', '.join(differ)}: "
                          f"e.g. {files_a[0]} and {files_b[0]}); write each run to its own folder, or "
                          "read_dump(..., allow_mixed=True)")
    return dict(next(iter(groups)))


def dump_files(dump_dir: str | Path) -> list[str]:
    """The parquet files of a dump; an ``InputFileError`` naming the folder where it has none."""
    path = Path(dump_dir)
    if not path.is_dir():
        raise InputFileError(f"feature dump folder not found: {path} (tth-adv run --dump-features DIR writes one)",
                             path=str(path))
    files = sorted(str(p) for p in path.rglob("*.parquet"))
    if not files:
        raise InputFileError(f"no feature dump (*.parquet) under {path}", path=str(path))
    return files


def dump_config(dump_dir: str | Path) -> dict | None:
    """The analysis configuration a dump was made with (None for a dump written before it was recorded).

    Its first file's: ``read_dump`` refuses a dump whose files were made with different ones."""
    text = read_provenance(dump_files(dump_dir)[0]).get("config")
    return json.loads(text) if text else None


def read_dump(dump_dir: str | Path, columns: list[str] | None = None, filter_expression: Any = None,
              allow_mixed: bool = False) -> pa.Table:
    """All chunks of a dump as one table (optionally a column subset and a pyarrow filter).

    Refuses a folder whose files were made with different configurations, models, feature-set
    versions or package versions (their provenance) unless ``allow_mixed``.
    """
    files = dump_files(dump_dir)
    if not allow_mixed:
        check_one_provenance(dump_dir, files)
    dataset = pads.dataset(files, format="parquet")
    missing = sorted(set(columns or []) - set(dataset.schema.names))
    if missing:
        hint = ("run the processor with --model" if missing == ["score"] else
                "written by an older version? rerun tth-adv run --dump-features")
        raise TthAdvError(f"feature dump {dump_dir} lacks column(s) {missing}: {hint}")
    return dataset.to_table(columns=columns, filter=filter_expression)
