"""Per-event, per-chunk and per-file costs of the processor and of a bare read, apart, from one run.

    python bench/scale_cost.py [--events 500000 1000000 2000000] [--files-per-sample 1 4]
                               [--chunksizes 50000 200000] [--repeat 2] [--keep DIR]

A ratio of whole-run times mixes what grows with the events with what grows with the files and
chunks.  This generates the dataset at each size and file count (the same events; more, smaller
files), and for each chunk size times, on one core:

* the bare read: plain uproot, file by file, the branches the processor reads, chunk by chunk
  (``TTree.iterate`` with the chunk size);
* the processor: ``run_analysis`` with the iterative executor (file checks, coffea's set-up,
  every chunk, normalisation), exact chunks.

Each configuration is the best of --repeat runs.  A least-squares fit of
time = k + a * files + b * chunks + c * events to each side gives the costs with their errors (from
the residuals); c_raw / c_processor is the per-event ratio (how close the processor's own work per
event comes to reading it), a and b the per-file and per-chunk costs.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

from processors.run import RunOptions, preflight, run_analysis
from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest


def bare_read(fileset: dict, branches: dict[str, list[str]], chunksize: int) -> tuple[int, int, float]:
    """Read every file's branches chunk by chunk with plain uproot: (files, chunks, seconds)."""
    start, files, chunks = time.perf_counter(), 0, 0
    for name, dataset in fileset.items():
        for path, tree in dataset["files"].items():
            files += 1
            with uproot.open(path) as f:
                for _ in f[tree].iterate(branches[name], step_size=chunksize, library="ak"):
                    chunks += 1
    return files, chunks, time.perf_counter() - start


def processor_run(manifest, config, chunksize: int) -> tuple[int, int, float]:
    """The processor over the manifest, one core, exact chunks: (files, chunks, seconds)."""
    start = time.perf_counter()
    output = run_analysis(manifest, config, RunOptions(progress=False, chunksize=chunksize, align_clusters=False))
    seconds = time.perf_counter() - start
    meta = output["metadata"]
    return len(meta["files_processed"]), sum(len(c) for c in meta["chunks"].values()), seconds


def fit_costs(rows: list[tuple[int, int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of seconds = k + a files + b chunks + c events: (coefficients, their errors)."""
    design = np.array([[1.0, f, c, e] for f, c, e, _ in rows])
    seconds = np.array([s for *_, s in rows])
    coefficients, *_ = np.linalg.lstsq(design, seconds, rcond=None)
    dof = max(len(rows) - design.shape[1], 1)
    variance = float(np.sum((seconds - design @ coefficients) ** 2)) / dof
    errors = np.sqrt(np.diag(variance * np.linalg.pinv(design.T @ design)))
    return coefficients, errors


def describe(label: str, coefficients: np.ndarray, errors: np.ndarray) -> str:
    """The fitted costs in readable units."""
    k, a, b, c = coefficients
    dk, da, db, dc = errors
    return (f"{label:<10} per run {k * 1e3:7.0f} ± {dk * 1e3:4.0f} ms   per file {a * 1e3:6.1f} ± {da * 1e3:4.1f} ms   "
            f"per chunk {b * 1e3:6.2f} ± {db * 1e3:4.2f} ms   per event {c * 1e6:6.3f} ± {dc * 1e6:5.3f} µs "
            f"({1 / c / 1e6:.2f}M events/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000])
    parser.add_argument("--files-per-sample", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--chunksizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per configuration")
    parser.add_argument("--keep", default=None, help="folder for the generated datasets (reused when present)")
    args = parser.parse_args()
    config = load_config()
    from processors.tth import TthProcessor

    proc = TthProcessor(config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        raw_rows, proc_rows = [], []
        for events, per_sample in itertools.product(args.events, args.files_per_sample):
            folder = root / f"e{events}_f{per_sample}"
            path = folder / "datasets.json"
            manifest = load_manifest(path if path.is_file() else generate_dataset(
                folder, events, seed=1, files_per_sample=per_sample, workers=2))
            fileset = preflight(manifest, config, skip_bad_files=False).fileset
            n_events = sum(d.n_events for d in manifest.datasets.values())
            branches = {name: proc.branches_read(config.format(entry["metadata"].get("format")),
                                                 bool(entry["metadata"]["is_data"]))
                        for name, entry in fileset.items()}
            for chunksize in args.chunksizes:
                raw = min((bare_read(fileset, branches, chunksize) for _ in range(args.repeat)), key=lambda r: r[2])
                run = min((processor_run(manifest, config, chunksize) for _ in range(args.repeat)), key=lambda r: r[2])
                raw_rows.append((raw[0], raw[1], n_events, raw[2]))
                proc_rows.append((run[0], run[1], n_events, run[2]))
                print(f"{n_events:>10,} events {raw[0]:>4} files chunks {chunksize:>7,}: bare read {raw[2]:6.2f} s "
                      f"({raw[1]} chunks), processor {run[2]:6.2f} s ({run[1]} chunks), ratio {raw[2] / run[2]:.2f}",
                      flush=True)
    raw_fit, proc_fit = fit_costs(raw_rows), fit_costs(proc_rows)
    print(describe("bare read", *raw_fit))
    print(describe("processor", *proc_fit))
    c_raw, c_proc = raw_fit[0][3], proc_fit[0][3]
    ratio_error = (c_raw / c_proc) * np.hypot(raw_fit[1][3] / c_raw, proc_fit[1][3] / c_proc)
    print(f"per-event ratio c_raw / c_processor = {c_raw / c_proc:.2f} ± {ratio_error:.2f} (goal >= 0.9); "
          f"processor per file {proc_fit[0][1] * 1e3:.1f} ± {proc_fit[1][1] * 1e3:.1f} ms (goal < 50 ms)")
    for label, events, files, chunksize in (("2025 Open Data GamGam data (36.6M events, 16 files)", 36.6e6, 16, 100_000),
                                            ("500M events in 500 files", 500e6, 500, 100_000)):
        k, a, b, c = proc_fit[0]
        hours = (k + a * files + b * events / chunksize + c * events) / 3600
        print(f"extrapolated, {label}: {hours:.2f} core-hours (processor, chunks of {chunksize:,})")


if __name__ == "__main__":
    main()
