"""Processor throughput next to a bare uproot read of the same branches, in one run.

    python bench/processor_throughput.py [--events 2000000] [--files-per-sample 2] [--chunksize 100000] [--workers 2]

1. Generates the synthetic dataset (or uses --datasets).
2. Runs the processor once with coffea's ``savemetrics`` to learn exactly which branches it
   reads, then times a bare ``uproot`` read of those branches, file by file.
3. Times the processor: iterative (one worker, no systematics), iterative with
   ``--systematics all``, futures and Dask with N workers.
Prints events/s and the ratios (processor / raw read, scaling, cost of systematics); each row is
the best of --repeat runs, every run starting its own process pool or LocalCluster.  Dask's first
run is shown too: it also starts the fork server that later LocalClusters of the process reuse.
Last, ``tth-adv run`` with futures and with Dask as one-off commands (fresh processes, imports,
start-up and saving the output included).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import uproot
from coffea import processor

from processors.run import RunOptions, preflight, run_analysis
from processors.tth import TthProcessor
from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.schema import FlatNtupleSchema


def branches_read(fileset: dict, config) -> dict[str, list[str]]:
    """The branches the processor actually reads per dataset, from coffea's column metrics.

    Measured on one data and one MC dataset (MC also reads the event weight and scale factors)
    and applied to every dataset of the same kind.
    """
    by_kind = {}
    for name, entry in fileset.items():
        is_data = bool(entry["metadata"].get("is_data"))
        if is_data not in by_kind:
            runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=FlatNtupleSchema,
                                      savemetrics=True, maxchunks=1)
            _, metrics = runner({name: entry}, processor_instance=TthProcessor(config), treename="mini")
            by_kind[is_data] = sorted({c.split("-")[0].split(",")[0] for c in metrics["columns"]})
    return {name: by_kind[bool(entry["metadata"].get("is_data"))] for name, entry in fileset.items()}


def raw_read(fileset: dict, branches: dict[str, list[str]]) -> tuple[int, float]:
    """Read each dataset's branches from every file with plain uproot; returns (events, seconds)."""
    start = time.perf_counter()
    events = 0
    for name, dataset in fileset.items():
        for path, tree in dataset["files"].items():
            with uproot.open(path) as f:
                arrays = f[tree].arrays(branches[name], library="ak")
                events += len(arrays)
    return events, time.perf_counter() - start


def read_baseline(datasets: str | None, events: int, files_per_sample: int, config, tmp: str) -> tuple:
    """The manifest (generated into tmp unless given), its checked fileset, the branches the processor reads
    and a first timed bare read: (manifest, fileset, branches, events read, seconds)."""
    manifest = load_manifest(datasets or generate_dataset(tmp, events, seed=1, files_per_sample=files_per_sample))
    fileset = preflight(manifest, config, skip_bad_files=False).fileset
    branches = branches_read(fileset, config)
    n, raw = raw_read(fileset, branches)
    return manifest, fileset, branches, n, raw


def wall_times(repeat: int, action: Callable[[], object]) -> list[float]:
    """Wall times of ``repeat`` calls of ``action``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def timed_runs(manifest, config, repeat: int, **options) -> list[float]:
    """Wall times of ``repeat`` runs (each starts its own pool or cluster: start-up included)."""
    return wall_times(repeat, lambda: run_analysis(manifest, config, RunOptions(progress=False, **options)))


def timed_run(manifest, config, repeat: int, **options) -> float:
    """Best wall time of ``repeat`` runs."""
    return min(timed_runs(manifest, config, repeat, **options))


def one_off_command(manifest_path: str, out: str, repeat: int, **options) -> float:
    """Best wall time of ``tth-adv run`` in a fresh process: imports, start-up and saving included."""
    command = [sys.executable, "-m", "ttH_adv.app.cli", "--no-progress", "run", "--datasets", str(manifest_path),
               "--out", out, *(f"--{k}={v}" for k, v in options.items())]
    return min(wall_times(repeat, lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--files-per-sample", type=int, default=2, help="fewer, larger files (Run-2 ntuples hold "
                        "100k-1M events per file); per-file overhead dominates small files")
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasets", default=None, help="use this manifest instead of generating")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per row (shared machines are noisy)")
    args = parser.parse_args()
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        manifest, fileset, branches, n, raw = read_baseline(args.datasets, args.events, args.files_per_sample, config,
                                                            tmp)
        raw = min(raw, raw_read(fileset, branches)[1])  # warm page cache for both sides
        chunk = args.chunksize
        rows = [("bare uproot read of the same branches", raw)]
        r = args.repeat
        rows.append(("processor iterative (1 worker)", timed_run(manifest, config, r, chunksize=chunk)))
        rows.append(("processor iterative, --systematics all",
                     timed_run(manifest, config, r, chunksize=chunk, systematics="all")))
        rows.append((f"processor futures ({args.workers} workers)",
                     timed_run(manifest, config, r, chunksize=chunk, executor="futures", workers=args.workers)))
        dask_times = timed_runs(manifest, config, r, chunksize=chunk, executor="dask", workers=args.workers)
        rows.append((f"processor dask LocalCluster ({args.workers} workers)", min(dask_times)))
        # The first cluster of a process also starts the fork server (one import of the analysis),
        # which later clusters reuse: what a one-off `tth-adv run` pays.
        rows.append(("  its first run (fork server started)", dask_times[0]))
        for executor in ("futures", "dask"):  # what one command pays, start to end
            rows.append((f"one-off `tth-adv run`, {executor} ({args.workers} workers)",
                         one_off_command(manifest.path, f"{tmp}/out-{executor}", r, executor=executor,
                                         workers=args.workers, chunksize=chunk)))
    n_files = sum(len(d["files"]) for d in fileset.values())
    widths = sorted({len(b) for b in branches.values()})
    print(f"{n:,} events in {n_files} files, {' or '.join(map(str, widths))} branches read (data or MC), "
          f"chunksize {chunk:,}")
    for label, seconds in rows:
        print(f"  {label:<45} {n / seconds:>12,.0f} events/s  ({seconds:.2f} s)")
    one = rows[1][1]
    print(f"ratio processor(1 worker) / raw read        {raw / one:>8.2f}   (goal >= 0.8)")
    print(f"cost of --systematics all vs none           {rows[2][1] / one:>8.2f}x")
    print(f"futures speed-up over 1 worker              {one / rows[3][1]:>8.2f}x  ({args.workers} workers)")
    print(f"dask speed-up over 1 worker                 {one / rows[4][1]:>8.2f}x  ({args.workers} workers)")
    print(f"dask / futures                              {rows[3][1] / rows[4][1]:>8.2f}   (goal >= 0.9)")
    print(f"dask (first run) / futures                  {rows[3][1] / rows[5][1]:>8.2f}")
    print(f"dask / futures, one-off commands            {rows[6][1] / rows[7][1]:>8.2f}")


if __name__ == "__main__":
    main()
