"""Power of the spurious-signal test against the background template's statistics.

    python bench/spurious_power.py [--trials 100] [--data-events 600]

For templates with r times the data's effective statistics (the template is the true shape
with Gaussian bin fluctuations of variance t / r at the data's yield, as ``ttH_adv.stats.templates``
builds them), the fraction of templates on which the exponential *fails* the test
(``ttH_adv.stats.fits.spurious_signal``, the relaxed criterion zeta = max(|S| - 2 Delta_MC, 0)), for a
truly exponential background (false alarms) and for a background a classifier sculpted into
a bump under the signal whose true spurious signal is k times the signal's statistical
uncertainty in data, dS.  Also printed: the mean |S_spur| the modelling nuisance would carry.  The
20% criterion starts to bite (2 Delta_MC < 0.2 dS) near r = 100, which is why
``fits.template_min_statistics`` asks for 50 (docs/fits.md).
"""

from __future__ import annotations

import argparse

import numpy as np

from ttH_adv.config import load_config
from ttH_adv.stats import fits

CONFIG = load_config()
WINDOW = CONFIG.mass
EDGES = WINDOW.edges()
CENTRES = 0.5 * (EDGES[:-1] + EDGES[1:])
SIGNAL = fits.SignalModel({"mu": 125.0, "sigma": 1.7, "alpha_lo": 1.5, "n_lo": 5.0, "alpha_hi": 1.5, "n_hi": 5.0},
                          3.0, 1.0)


def shape(bump: float) -> np.ndarray:
    """Unit exponential continuum (slope 0.02/GeV) with a sculpted bump of relative size ``bump`` at 126 GeV."""
    base = fits.family_shape("exponential", [-0.55], EDGES)
    sculpted = base * (1 + bump * np.exp(-0.5 * ((CENTRES - 126.0) / 4.0) ** 2))
    return sculpted / sculpted.sum()


def true_spurious(template: np.ndarray) -> float:
    """|S| of an exponential S+B fit at m_H = 125 GeV to the noise-free template."""
    return abs(fits.fit_s_plus_b_chi2(template, np.maximum(template, 1e-3), EDGES, "exponential",
                                      SIGNAL.shape(EDGES))[0])


def bump_for(target: float, data_events: float) -> float:
    """The bump size whose true spurious signal is ``target`` events (linear in the bump)."""
    per_unit = true_spurious(data_events * shape(0.05)) / 0.05
    return target / per_unit


def trial(truth: np.ndarray, ratio: float, rng: np.random.Generator) -> tuple[bool, float]:
    """(exponential fails the test, its max |S_spur|) on one fluctuated template."""
    variance = truth / ratio
    template = truth + rng.normal(0.0, np.sqrt(variance))
    fit_variance = np.maximum(variance, truth.sum() / ratio / len(truth) * 1e-3)
    _, data_error = fits.fit_s_plus_b_poisson(truth, EDGES, "exponential", SIGNAL.shape(EDGES))
    test = fits.spurious_signal(template, fit_variance, EDGES, "exponential", SIGNAL, SIGNAL.yield_, data_error,
                                WINDOW.scan_masses())
    return (not test.passed), test.max_abs_signal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--data-events", type=float, default=600.0, help="data yield of the category (105-160 GeV)")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1, 2, 5, 10, 20, 50, 100, 200])
    args = parser.parse_args()
    smooth_truth = args.data_events * shape(0.0)
    _, data_error = fits.fit_s_plus_b_poisson(smooth_truth, EDGES, "exponential", SIGNAL.shape(EDGES))
    print(f"data: {args.data_events:g} events in {EDGES[0]:g}-{EDGES[-1]:g} GeV; signal {SIGNAL.yield_:g} events; "
          f"its statistical uncertainty dS = {data_error:.2f} events; pass: zeta < 10% S or < 20% dS")
    truths = {f"k={k:g}": args.data_events * shape(bump_for(k * data_error, args.data_events)) for k in (0, 0.5, 1, 2)}
    print(f"{'r':>5}" + "".join(f"{'fail, ' + name:>14}" for name in truths) + f"{'<|S|>/dS, k=0':>15}")
    for ratio in args.ratios:
        rng = np.random.default_rng(int(ratio * 100))
        row, noise = [], 0.0
        for name, truth in truths.items():
            results = [trial(truth, ratio, rng) for _ in range(args.trials)]
            row.append(np.mean([failed for failed, _ in results]))
            if name == "k=0":
                noise = np.mean([s for _, s in results]) / data_error
        print(f"{ratio:>5g}" + "".join(f"{x:>14.2f}" for x in row) + f"{noise:>15.2f}")


if __name__ == "__main__":
    main()
