"""Generator rate: events/s for the full write, next to generation alone, in one run.

    python bench/generator_rate.py [--events 1000000]

Prints the rate of ``generate_dataset`` (physics + ROOT writing) and of the event models
alone (no I/O), and their ratio, measured side by side on the same machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from ttH_adv.inputs.generator import events_per_sample, generate_blocks, generate_dataset
from ttH_adv.inputs.samples import SAMPLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    counts = events_per_sample(args.events)
    start = time.perf_counter()
    for index, spec in enumerate(SAMPLES):
        for _ in generate_blocks(spec, index, counts[spec.name], seed=1):
            pass
    physics = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        generate_dataset(out, args.events, seed=1)
        full = time.perf_counter() - start

    total = sum(counts.values())
    print(f"events                     {total:>12,d}")
    print(f"event models only          {total / physics:>12,.0f} events/s  ({physics:.1f} s)")
    print(f"generate + write ROOT      {total / full:>12,.0f} events/s  ({full:.1f} s)")
    print(f"ratio write/models-only    {physics / full:>12.2f}")


if __name__ == "__main__":
    main()
