"""How flat the ddt percentile map gets, by where it is fitted and how finely: one training, many maps.

    python bench/ddt_maps.py --features DIR [--config training/small.yaml] [--seed 1]

Trains the unconstrained network of each fold once (the ``ddt`` method's network) and scores its
test fold through ``training.run.mapped_scores`` maps fitted on: the validation background
(the exported ``ddt`` map), the other half of the test fold's background (the ceiling,
``training.run.fixed_efficiency_ceiling``) and, as the limit no map can pass, the very events it
scores (oracle).  Prints out-of-fold R50 and JSD/floor at 50% and 80% signal efficiency per map
(docs/training.md, "The ddt ceiling").
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.config import load_training_config  # noqa: E402
from training.data import load_training_data  # noqa: E402
from training.methods import evaluate_scores  # noqa: E402
from training.run import ceiling_half, fit_network, mapped_scores  # noqa: E402
from ttH_adv.config import load_config  # noqa: E402
from ttH_adv.stats import metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bins", type=int, nargs="+", default=[20, 30, 40, 60])
    args = parser.parse_args()
    config = load_training_config(args.config, {"schedule": {"seed": args.seed}})
    data = load_training_data(args.features, config.data)
    binning = metrics.mass_binning(load_config().mass)
    n_folds = config.data.n_folds
    maps = [(source, bins) for source in ("validation", "other half", "oracle") for bins in args.bins]
    scores = {m: np.zeros(len(data)) for m in maps}
    for k in range(n_folds):
        train, test = data.fold(k, n_folds)
        model, _, _ = fit_network(train, config, "ddt", 0.0, binning)
        _, validation = train.split_validation(config.data.validation_fraction)
        valid_bkg = validation.y == 0
        sources = {"validation": (model.logits(validation.X[valid_bkg]), validation.mass[valid_bkg],
                                  validation.weight[valid_bkg])}
        logits, half = model.logits(test.X), ceiling_half(test.event_number, n_folds)
        for source, bins in maps:
            fold_scores = np.zeros(len(test))
            for h in (0, 1):
                scored = half == h
                if source == "validation":
                    fitted = sources["validation"]
                else:
                    rows = ((half != h) if source == "other half" else scored) & (test.y == 0)
                    fitted = (logits[rows], test.mass[rows], test.weight[rows])
                fold_scores[scored] = mapped_scores(config, fitted, logits[scored], test.mass[scored], bins)
            scores[(source, bins)][data.test_mask(k, n_folds)] = fold_scores
    print(f"{int(data.y.sum())} signal, {int((1 - data.y).sum())} background events; seed {args.seed}")
    print(f"{'map fitted on':<14}{'bins':>5}{'R50':>7}{'JSD50/floor':>13}{'JSD80/floor':>13}")
    for (source, bins), s in scores.items():
        m = evaluate_scores(s, data.y, data.mass, data.weight, binning)
        print(f"{source:<14}{bins:>5}{m['r50']:>7.2f}{m['ratio50']:>13.2f}{m['ratio80']:>13.2f}", flush=True)


if __name__ == "__main__":
    main()
