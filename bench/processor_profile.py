"""Where the processor's time goes, step by step, next to a bare uproot read of the same branches.

    python bench/processor_profile.py [--events 2000000] [--files-per-sample 2] [--chunksize 100000]
                                      [--systematics none|weights|all] [--repeat 2]

One worker (iterative executor), the same path as ``tth-adv run``.  Each step of the processor
(its methods) is timed by its self time: its own wall time less that of the timed steps it calls,
so the rows add up to ``process``.  What lies outside ``process`` -- opening files, parsing TTree
headers, coffea's chunk set-up, reading and decompressing the baskets (coffea's ``preload``) --
is the run's wall time less that of ``process``; a cProfile run of the same work splits it into
zlib, the rest of uproot and coffea.  The bare read is timed the same way, best of --repeat.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import tempfile
import time
from collections import defaultdict

from processor_throughput import raw_read, read_baseline

from processors.run import RunOptions, run_analysis
from processors.tth import TthProcessor
from ttH_adv.config import load_config

STEPS = ("process", "build_objects", "count_objects", "raw_weights", "select", "select_diphoton", "assign_region",
         "blinded", "select_photons", "select_jets_near", "select_leptons_near", "assign_channel", "assign_control", "compute_features", "score",
         "assign_category", "fill", "cutflow", "shifted", "dump")
SELF_TIME: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
_stack: list[float] = []  # per open timed call: the time its timed children took


def timed(name: str, method):
    """Wrap a method so that its self time (own wall time less its timed children's) adds to SELF_TIME."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        _stack.append(0.0)
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            children = _stack.pop()
            SELF_TIME[name] += elapsed - children
            CALLS[name] += 1
            if _stack:
                _stack[-1] += elapsed
    return wrapper


class ProfiledProcessor(TthProcessor):
    """The processor with every step timed (same results: only wrappers are added).

    The executor runs a copy of the processor, so each chunk's timings travel back in its output
    (``profile``: seconds per step, and calls), added up like the histograms."""

    def process(self, events):
        SELF_TIME.clear()
        CALLS.clear()
        out = timed("process", TthProcessor.process)(self, events)
        out["profile"] = {**SELF_TIME, **{f"calls {k}": v for k, v in CALLS.items()}}
        return out


for _name in (s for s in STEPS[1:] if hasattr(TthProcessor, s)):  # older versions lack some steps
    setattr(ProfiledProcessor, _name, timed(_name, getattr(TthProcessor, _name)))


def profiled_run(manifest, config, options: RunOptions) -> tuple[float, dict[str, float]]:
    """Wall time of one run and its summed step self times."""
    proc = ProfiledProcessor(config, systematics=options.systematics)
    start = time.perf_counter()
    output = run_analysis(manifest, config, options, processor_instance=proc)
    return time.perf_counter() - start, dict(output["profile"])


def outside_split(manifest, config, options: RunOptions) -> dict[str, float]:
    """cProfile of one plain run: seconds in zlib, in the file checks, and in process (to scale the rest by)."""
    profile = cProfile.Profile()
    profile.enable()
    run_analysis(manifest, config, options)
    profile.disable()
    stats = pstats.Stats(profile).stats
    split = defaultdict(float)
    for (filename, _, function), (_, _, tottime, cumtime, _) in stats.items():
        if "decompress" in function and ("zlib" in filename or filename == "~"):
            split["zlib decompression"] += tottime
        if function == "preflight" and filename.endswith("run.py"):
            split["file checks (pre-flight)"] += cumtime
        if function == "process" and filename.endswith("tth.py"):
            split["process"] += cumtime
        if function == "run_analysis" and filename.endswith("run.py"):
            split["run"] += cumtime
    return split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--files-per-sample", type=int, default=2)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--systematics", default="none", choices=["none", "weights", "all"])
    parser.add_argument("--datasets", default=None, help="use this manifest instead of generating")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs (shared machines are noisy)")
    args = parser.parse_args()
    config = load_config()
    options = RunOptions(progress=False, chunksize=args.chunksize, systematics=args.systematics)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, fileset, branches, n, raw = read_baseline(args.datasets, args.events, args.files_per_sample, config,
                                                            tmp)
        best, profile = float("inf"), {}
        for _ in range(args.repeat):  # interleaved with the bare read, so both see the same machine
            raw = min(raw, raw_read(fileset, branches)[1])
            wall, run_profile = profiled_run(manifest, config, options)
            if wall < best:
                best, profile = wall, run_profile
        split = outside_split(manifest, config, options)
    chunks = int(profile["calls process"])
    steps = {k: v for k, v in profile.items() if not k.startswith("calls ")}
    in_process = sum(steps.values())
    outside = best - in_process
    print(f"{n:,} events, {chunks} chunks of up to {args.chunksize:,}, --systematics {args.systematics}, 1 worker")
    print(f"{'step':<40} {'s':>7} {'ms/chunk':>9} {'share':>6}")

    def row(label: str, seconds: float) -> None:
        print(f"{label:<40} {seconds:>7.3f} {1e3 * seconds / chunks:>9.2f} {seconds / best:>6.1%}")

    row("bare uproot read of the same branches", raw)
    row("processor run (wall)", best)
    zlib_share = split["zlib decompression"] / max(split["run"] - split["process"], 1e-9)
    pre_share = split["file checks (pre-flight)"] / max(split["run"] - split["process"], 1e-9)
    row("  outside process: read, coffea, checks", outside)
    row("    of which zlib (cProfile share)", outside * zlib_share)
    row("    of which file checks (cProfile share)", outside * pre_share)
    row("    the rest: uproot parse, coffea set-up", outside * (1 - zlib_share - pre_share))
    row("  process (the processor's steps)", in_process)
    for name in sorted(steps, key=steps.get, reverse=True):
        row(f"    {name}" + (" (rest)" if name in ("process", "select") else ""), steps[name])
    print(f"ratio processor / raw read: {raw / best:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
