"""Run-to-run spread of the decorrelation table: every method retrained with several seeds.

    python bench/decorrelation_spread.py --features DIR [--config training/small.yaml]
        [--seeds 1 2 3 4 5] [--lambdas 10 30 100] [--methods adversarial drop-correlated disco mode mode-linear ddt]

One training seed moves a result by more than the differences between methods on ~10^4
background events, so a single table cannot say which method is better.  This trains each
(method, lambda) k-fold once per seed (the seed sets initial weights, dropout, batch order and
adversary batches; folds and data stay fixed) and prints, per result, the mean and standard
deviation over seeds of R50 and of JSD/floor at 50% and 80% signal efficiency (out-of-fold, m_yy in
the configured window's JSD bins), how many seeds put it within --within (1.5) x the floor at both
efficiencies, and its mean R50 as a fraction of the ddt ceiling's (where ddt is among the methods:
its network made flat by a cross-fitted map, ``training.run.fixed_efficiency_ceiling``).
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.config import load_training_config  # noqa: E402
from training.data import load_training_data  # noqa: E402
from training.run import train_one  # noqa: E402
from ttH_adv.app.stages import training_runs  # noqa: E402
from ttH_adv.config import load_config  # noqa: E402
from ttH_adv.stats import metrics  # noqa: E402

FIGURES = ("r50", "ratio50", "ratio80")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    parser.add_argument("--methods", nargs="+", default=["adversarial", "drop-correlated", "disco", "mode", "mode-linear", "ddt"])
    parser.add_argument("--analysis-config", default=None, help="analysis configuration (its mass window)")
    parser.add_argument("--within", type=float, default=1.5, help="count seeds within this many times the floor")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    defaults = load_training_config(args.config)
    # the adversary scanned over --lambdas; every other method once (DisCo at its configured lambda)
    runs = [run for method in args.methods for run in
            training_runs([method], None, args.lambdas if method == "adversarial" else None, defaults.lambdas)]
    data = load_training_data(args.features, defaults.data)
    binning = metrics.mass_binning(load_config(args.analysis_config).mass)
    print(f"{int(data.y.sum())} signal, {int((1 - data.y).sum())} background events; seeds {args.seeds}")
    rows, ceiling = [], []
    for method, lam in runs:
        figures = []
        for seed in args.seeds:
            config = load_training_config(args.config, {"schedule": {"seed": seed}})
            result, _, _ = train_one(data, config, method, lam, binning)
            figures.append([result.metrics[k] for k in FIGURES])
            kept = ", ".join(f"{k['epoch']}{'' if k['within_target'] else '*'}" for k in result.metrics["kept_epochs"])
            print(f"  {method} {lam:g} seed {seed}: R50 {figures[-1][0]:.2f} @ JSD50/floor {figures[-1][1]:.2f}, "
                  f"JSD80/floor {figures[-1][2]:.2f}; kept epochs {kept} (*: none within the flatness target) "
                  f"({result.metrics['training_seconds']:.0f} s)", flush=True)
            if "ceiling" in result.metrics:
                ceiling.append([result.metrics["ceiling"][k] for k in FIGURES])
        rows.append((method, lam, np.array(figures)))
    if ceiling:
        rows.append(("ddt ceiling", float("nan"), np.array(ceiling)))
    ceilings = [f[:, 0].mean() for m, _, f in rows if m == "ddt ceiling"]
    print(f"{'method':<16}{'lambda':>7}{'R50':>13}{'/ceil':>6}{'JSD50/floor':>14}{'JSD80/floor':>14}"
          f"{f'<= {args.within:g}x':>8}   per seed (R50 @ JSD50/floor, JSD80/floor)")
    for method, lam, f in rows:
        within = int(np.sum((f[:, 1] <= args.within) & (f[:, 2] <= args.within)))
        share = f"{f[:, 0].mean() / ceilings[0]:>6.2f}" if ceilings else f"{'':>6}"
        detail = "  ".join(f"{a:.1f}@{b:.1f},{c:.1f}" for a, b, c in f)
        print(f"{method:<16}{'' if np.isnan(lam) else f'{lam:g}':>7}{f[:, 0].mean():>7.2f}±{f[:, 0].std(ddof=1):<5.2f}{share}"
              f"{f[:, 1].mean():>8.2f}±{f[:, 1].std(ddof=1):<5.2f}{f[:, 2].mean():>8.2f}±{f[:, 2].std(ddof=1):<5.2f}"
              f"{within:>5}/{len(f)}   {detail}", flush=True)

if __name__ == "__main__":
    main()
