"""Feature dumps: one parquet file per processed chunk, read back as one dataset.

File names are derived from the chunk (dataset / input file / entry range / variation), so
two workers never collide, a retried chunk overwrites its own file rather than adding a
second copy, and every file is written to a temporary name and renamed when complete.

Columns: every feature of ``ttH_adv.features`` (all named sets), ``mgg``, ``weight``
(normalised: mcWeight x scale factors x L x sigma / sum of weights; 1 for data), one
``weight_<variation>`` column per weight systematic, ``region`` (TI/NTNI), ``channel``
(had/lep/none), ``category``, ``dataset``, ``role`` (the manifest's sample role), ``eventNumber``, ``systematic`` (``nominal`` or an
object variation, whose rows hold the shifted features), and ``score`` when a model ran: the
out-of-fold score of events in a channel, NaN for the others (they are never categorised, so
never scored).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from .errors import TthAdvError


def chunk_file(dump_dir: str | Path, dataset: str, filename: str, start: int, stop: int, systematic: str) -> Path:
    """The parquet path of one chunk's rows."""
    tag = hashlib.sha1(filename.encode()).hexdigest()[:8]
    return Path(dump_dir) / dataset / f"{Path(filename).stem}-{tag}_{start}-{stop}_{systematic}.parquet"


def write_chunk(dump_dir: str | Path, info: Any, selection: Any, raw_weights: np.ndarray,
                event_number: np.ndarray, systematic: str, weight_variations: Sequence[Any]) -> Path:
    """Write the selected events of one chunk and variation; returns the file written."""
    n = int(selection.passed.sum())
    columns: dict[str, Any] = {name: np.asarray(v, dtype=np.float32) for name, v in selection.features.items()}
    weight = raw_weights * info.norm
    columns["mgg"] = selection.mass[selection.passed].astype(np.float32)
    columns["weight"] = weight
    for v in weight_variations:
        columns[f"weight_{v.name}"] = weight * v.weight_factor()
    columns["region"] = np.where(selection.is_ti[selection.passed], "TI", "NTNI")
    columns["channel"] = np.asarray(selection.channel, dtype=str)
    columns["category"] = np.asarray(selection.category, dtype=str)
    columns["dataset"] = np.full(n, info.dataset)
    columns["role"] = np.full(n, info.role)
    columns["eventNumber"] = np.asarray(event_number, dtype=np.int64)
    columns["systematic"] = np.full(n, systematic)
    if getattr(selection, "score", None) is not None:
        columns["score"] = np.asarray(selection.score, dtype=np.float32)
    path = chunk_file(dump_dir, info.dataset, info.filename, info.entry_start, info.entry_stop, systematic)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(pa.table(columns), tmp)
    os.replace(tmp, path)
    return path


def read_dump(dump_dir: str | Path, columns: list[str] | None = None, filter_expression: Any = None) -> pa.Table:
    """All chunks of a dump as one table (optionally a column subset and a pyarrow filter)."""
    files = sorted(str(p) for p in Path(dump_dir).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no feature dump (*.parquet) under {dump_dir}")
    dataset = pads.dataset(files, format="parquet")
    missing = sorted(set(columns or []) - set(dataset.schema.names))
    if missing:
        hint = ("run the processor with --model" if missing == ["score"] else
                "written by an older version? rerun tth-adv run --dump-features")
        raise TthAdvError(f"feature dump {dump_dir} lacks column(s) {missing}: {hint}")
    return dataset.to_table(columns=columns, filter=filter_expression)
