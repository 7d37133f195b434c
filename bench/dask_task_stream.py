"""Where a Dask run's time goes: per-task compute, worker utilisation and the tail, per worker count.

    python bench/dask_task_stream.py [--events 4000000] [--files-per-sample 12] [--workers 16 1]

Generates the dataset, then for each worker count runs the processor on a LocalCluster whose
workers (and this client) have already imported what the run needs, recording Dask's task
stream.  Prints the wall time, when the first task started and the last ended, the workers'
busy fraction of workers x wall, and the compute summed per kind of task (the processor's
chunks, the file checks, the reductions).  If the chunks' summed compute grows with the worker
count, each chunk runs slower with every core busy (shared memory bandwidth or SMT siblings),
which no scheduling change recovers.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from collections import Counter

from processors.run import RunOptions, local_cluster, run_analysis
from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest


def profile(manifest, workers: int) -> str:
    """One run on a warm LocalCluster of ``workers``, summarised from its task stream."""
    from distributed import Client, get_task_stream

    with local_cluster(workers) as cluster, Client(cluster) as client:
        for module in ("processors.tth", "dask.dataframe"):  # one-time start-up, off the clock
            client.run(importlib.import_module, module)
        importlib.import_module("dask.dataframe")
        with get_task_stream(client) as stream:
            start = time.time()
            run_analysis(manifest, load_config(), RunOptions(progress=False, executor="dask", client=client))
            wall = time.time() - start
    computes = [(str(task["key"]).split("-")[0], s) for task in stream.data for s in task["startstops"]
                if s["action"] == "compute"]
    by_kind = Counter()
    for kind, s in computes:
        by_kind[kind] += s["stop"] - s["start"]
    first = min(s["start"] for _, s in computes) - start
    last = max(s["stop"] for _, s in computes) - start
    busy = sum(by_kind.values())
    kinds = ", ".join(f"{k} {v:.1f} s" for k, v in by_kind.most_common())
    return (f"{workers:>3} workers: wall {wall:.2f} s, first task {first:.2f} s, last ends {last:.2f} s, "
            f"busy {busy / (workers * wall):.0%} of {workers} x wall; compute: {kinds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=4_000_000)
    parser.add_argument("--files-per-sample", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 1])
    parser.add_argument("--generate-workers", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(generate_dataset(tmp, args.events, seed=1, files_per_sample=args.files_per_sample,
                                                  workers=args.generate_workers))
        for workers in args.workers:
            print(profile(manifest, workers), flush=True)


if __name__ == "__main__":
    main()
