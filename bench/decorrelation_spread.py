"""Run-to-run spread of the decorrelation table: every method retrained with several seeds.

    python bench/decorrelation_spread.py --features DIR [--config training/small.yaml]
        [--seeds 1 2 3 4 5] [--lambdas 10 30 100] [--methods adversarial drop-correlated disco mode mode-linear ddt]

One training seed moves a result by more than the differences between methods on ~10^4
background events, so a single table cannot say which method is better.  This trains each
(method, lambda) k-fold once per seed (the seed sets initial weights, dropout, batch order and
adversary batches; folds and data stay fixed) and prints, per result, the mean and standard
deviation over seeds of R50 and JSD50/floor (out-of-fold, m_yy in the configured window's JSD
bins), and how many seeds put it within 2x the floor.
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
from ttH_adv.app.cli import training_runs  # noqa: E402
from ttH_adv.config import load_config  # noqa: E402
from ttH_adv.stats import metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    parser.add_argument("--methods", nargs="+", default=["adversarial", "drop-correlated", "disco", "mode", "mode-linear", "ddt"])
    parser.add_argument("--analysis-config", default=None, help="analysis configuration (its mass window)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    defaults = load_training_config(args.config)
    # the adversary scanned over --lambdas; every other method once (DisCo at its configured lambda)
    runs = [run for method in args.methods for run in
            training_runs([method], None, args.lambdas if method == "adversarial" else None, defaults.lambdas)]
    data = load_training_data(args.features, defaults.data)
    binning = metrics.mass_binning(load_config(args.analysis_config).mass)
    print(f"{int(data.y.sum())} signal, {int((1 - data.y).sum())} background events; seeds {args.seeds}")
    print(f"{'method':<16}{'lambda':>7}{'R50 mean':>10}{'std':>6}{'JSD50/fl mean':>15}{'std':>6}"
          f"{'<= 2x':>7}   per seed (R50 @ JSD50/floor)")
    for method, lam in runs:
        r50, ratio = [], []
        for seed in args.seeds:
            config = load_training_config(args.config, {"schedule": {"seed": seed}})
            result, _, _ = train_one(data, config, method, lam, binning)
            r50.append(result.metrics["r50"])
            ratio.append(result.metrics["ratio50"])
        within = sum(r <= 2.0 for r in ratio)
        detail = "  ".join(f"{a:.1f}@{b:.1f}" for a, b in zip(r50, ratio, strict=True))
        print(f"{method:<16}{lam:>7g}{np.mean(r50):>10.2f}{np.std(r50, ddof=1):>6.2f}{np.mean(ratio):>15.2f}"
              f"{np.std(ratio, ddof=1):>6.2f}{within:>4}/{len(ratio)}   {detail}", flush=True)


if __name__ == "__main__":
    main()
