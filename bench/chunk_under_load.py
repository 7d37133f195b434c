"""The cost of one chunk when every core is busy, against the same chunk alone, in one run.

    python bench/chunk_under_load.py [--events 600000] [--chunksize 50000] [--workers 2] [--repeat 3]

Generates a dataset (or takes --datasets), cuts every file into chunks, and times the processor's
``process`` on each chunk, reading included (lazy arrays are read when the processor touches them),
in fresh worker processes:

1. alone: one worker runs every chunk in turn;
2. under load: --workers workers run every chunk each, all at once, so that all of them are busy.

Prints the median seconds per chunk of each and their ratio (under load / alone).  A ratio above 1 is
what the shared memory bandwidth and caches cost a chunk once the other cores work too; the
16-worker scaling figure (bench/scale_run.py) cannot beat 1 / ratio per worker.  Best of --repeat.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time

from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest


def chunks_of(manifest_path: str, chunksize: int) -> list[tuple[str, str, int, int]]:
    """(dataset, file, start, stop) of every chunk of every file."""
    import uproot

    manifest = load_manifest(manifest_path)
    out = []
    for name, dataset in manifest.datasets.items():
        for path, tree in dataset.files.items():
            with uproot.open(path) as f:
                n = f[tree or "mini"].num_entries
            out += [(name, path, a, min(a + chunksize, n)) for a in range(0, n, chunksize)]
    return out


def time_chunks(job: tuple[str, list[tuple[str, str, int, int]]]) -> list[float]:
    """Seconds of the processor on each chunk, in this process (imports and the first chunk's set-up excluded)."""
    from processors.tth import TthProcessor
    from ttH_adv.inputs.objects import open_events

    manifest_path, chunks = job
    manifest, config = load_manifest(manifest_path), load_config()
    proc = TthProcessor(config)
    seconds = []
    for i, (name, path, start, stop) in enumerate([chunks[0], *chunks]):
        dataset = manifest.datasets[name]
        fmt = config.format(dataset.format or config.default_format)
        events = open_events(path, fmt, {**dataset.metadata(), "dataset": name}, entry_start=start, entry_stop=stop)
        t = time.perf_counter()
        proc.process(events)
        if i:  # the first run warms the imports and caches
            seconds.append(time.perf_counter() - t)
    return seconds


def median_per_chunk(manifest_path: str, chunks: list, workers: int) -> float:
    """Median seconds per chunk with ``workers`` processes each running every chunk at once."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.map(time_chunks, [(manifest_path, chunks)] * workers)
    return statistics.median(s for r in results for s in r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--chunksize", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--datasets", default=None, help="an existing manifest instead of generating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest_path = args.datasets or str(generate_dataset(tmp, args.events, 5, show_progress=False))
        chunks = chunks_of(manifest_path, args.chunksize)
        print(f"{len(chunks)} chunks of up to {args.chunksize:,} events; {args.workers} workers under load")
        runs = []
        for _ in range(args.repeat):  # interleaved, so that a drift of the machine hits both alike
            runs.append((median_per_chunk(manifest_path, chunks, 1), median_per_chunk(manifest_path, chunks,
                                                                                      args.workers)))
            print(f"  alone {runs[-1][0] * 1e3:.1f} ms, under load {runs[-1][1] * 1e3:.1f} ms", flush=True)
        alone, loaded = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"median per chunk: alone {alone * 1e3:.1f} ms, {args.workers} busy workers {loaded * 1e3:.1f} ms, "
          f"ratio {loaded / alone:.2f}")


if __name__ == "__main__":
    main()
