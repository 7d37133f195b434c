"""Scale run standing for the full Run-2 ntuples: many events over many files through Dask.

    python bench/scale_run.py [--events 20000000] [--files-per-sample 12] [--workers 2 [4 ...]]
                              [--chunksize 100000] [--keep DIR]

Generates the dataset (or reuses --keep DIR if it already holds one), runs the processor on a
Dask LocalCluster for each worker count in turn, and reports the event rate, the speed-up over
the first worker count, and the workers' resident memory: once they are ready (a forked worker
starts with the pages of the process it was forked from) and at their peak (getrusage at the end).  Run it at two
sizes to see memory stay flat.  The clock starts once the workers have imported the analysis (a
cluster's one-time start-up, whatever the input size).
"""

from __future__ import annotations

import argparse
import importlib
import resource
import tempfile
import time
from pathlib import Path

from processors.run import RunOptions, local_cluster, run_analysis
from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run_on_cluster(manifest, workers: int, chunksize: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """Run through a LocalCluster we own, so worker memory can be read afterwards."""
    from distributed import Client

    with local_cluster(workers) as cluster, Client(cluster) as client:
        client.run(importlib.import_module, "processors.tth")  # the cluster's one-time start-up, off the clock
        ready = client.run(rss_mb)
        start = time.perf_counter()
        run_analysis(manifest, load_config(), RunOptions(executor="dask", workers=workers, chunksize=chunksize,
                                                         progress=False, client=client))
        seconds = time.perf_counter() - start
        return seconds, ready, client.run(peak_rss_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--files-per-sample", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--keep", default=None, help="folder for the generated files (kept for reuse)")
    parser.add_argument("--generate-workers", type=int, default=1, help="generate the samples in parallel processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        manifest_path = folder / "datasets.json"
        start = time.perf_counter()
        if not manifest_path.is_file():
            generate_dataset(folder, args.events, seed=1, files_per_sample=args.files_per_sample,
                             workers=args.generate_workers)
        generation = time.perf_counter() - start
        manifest = load_manifest(manifest_path)
        n_files = sum(len(d.files) for d in manifest.datasets.values())
        n_events = sum(d.n_events for d in manifest.datasets.values())
        print(f"{n_events:,} events in {n_files} files (generated in {generation:.0f} s), chunksize "
              f"{args.chunksize:,}, dask LocalCluster")
        print(f"{'workers':>8}{'seconds':>9}{'events/s':>12}{'speed-up':>10}{'RSS ready MB':>14}{'RSS max MB':>12}"
              f"{'RSS mean MB':>12}")
        first_rate = None
        for workers in args.workers:
            seconds, ready, memory = run_on_cluster(manifest, workers, args.chunksize)
            rate = n_events / seconds
            first_rate = first_rate or rate
            rss = list(memory.values())
            print(f"{workers:>8}{seconds:>9.1f}{rate:>12,.0f}{rate / first_rate:>9.2f}x{max(ready.values()):>14,.0f}"
                  f"{max(rss):>12,.0f}"
                  f"{sum(rss) / len(rss):>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
