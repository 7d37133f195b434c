"""The bias test's toy fits: Fisher scoring (``ttH_adv.stats.fits.bias_toys``) against MIGRAD, side by side.

    python bench/bias_toys.py [--toys 50] [--repeats 3]

For background templates of a few sizes and each family the demo's categories choose, the time of
``fits.bias_toys`` (Fisher scoring from the template's fit, MIGRAD where it fails) and of the same toys
fitted by MIGRAD alone (``fits.fit_s_plus_b_poisson`` from the same start), interleaved so that the
machine's load falls on both alike; the ratio of their medians, and how far their mean fitted signals
(what the bias test reads) lie apart in units of the toys' spread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ttH_adv.config import load_config
from ttH_adv.stats import fits

EDGES = load_config().mass.edges()
SIGNAL = fits.normalised_shape(lambda m: fits.dscb(m, 125.0, 1.7, 1.5, 5.0, 1.5, 5.0), EDGES)
FAMILIES = ("exponential", "exppoly2", "bernstein3")  # the demo's: exponential 60%, exppoly2 35%, Bernstein 5%


def template(total: float) -> np.ndarray:
    """A curved falling continuum of ``total`` events (no family is exactly it)."""
    return total * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 0.6], 105, 160), EDGES)


def with_migrad(counts_template: np.ndarray, family: str, toys: int, seed: int) -> np.ndarray:
    """The same toys as ``fits.bias_toys`` draws, each fitted by MIGRAD from the template's fit."""
    rng = np.random.default_rng(seed)
    start = tuple(float(v) for v in fits._poisson_signal_fit(counts_template, EDGES, family, SIGNAL,
                                                             with_error=False).values)
    return np.array([fits.fit_s_plus_b_poisson(rng.poisson(counts_template).astype(float), EDGES, family, SIGNAL,
                                               with_error=False, start=start)[0] for _ in range(toys)])


def timed(call, *args, **kwargs) -> tuple[float, np.ndarray]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'events':>7s} {'family':12s} {'MIGRAD s':>9s} {'Fisher s':>9s} {'ratio':>6s} {'|mean diff| / spread':>21s}")
    for total in (30.0, 300.0, 3000.0):
        counts = template(total)
        for family in FAMILIES:
            migrad, fisher = [], []
            for repeat in range(args.repeats):
                t_m, by_migrad = timed(with_migrad, counts, family, args.toys, repeat)
                t_f, by_fisher = timed(fits.bias_toys, counts, EDGES, family, SIGNAL, args.toys, seed=repeat)
                migrad.append(t_m)
                fisher.append(t_f)
            apart = abs(by_migrad.mean() - by_fisher.mean()) / max(by_migrad.std(), 1e-12)
            print(f"{total:7.0f} {family:12s} {np.median(migrad):9.3f} {np.median(fisher):9.3f} "
                  f"{np.median(fisher) / np.median(migrad):6.2f} {apart:21.4f}")


if __name__ == "__main__":
    main()
