"""Training time per epoch per 100k events, by method and network size, side by side in one run.

    python bench/training_time.py [--events 100000] [--background-fraction 0.1]

Toy events with the seed feature set's width (speed does not depend on what the features hold)
and the background share of the real training data.  Each (network, method) gets one untimed
epoch (tracing) and then the best of two timed epochs of the phase that dominates its training:
the plain epoch for the classifier, the adversarial epoch (with its adversary steps) for
``adversarial``, the penalised epoch for DisCo.  Prints seconds per epoch per 100k events and
each method's cost relative to the plain classifier of the same size.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training.config import load_training_config  # noqa: E402
from training.methods import DecorrelatedClassifier  # noqa: E402
from ttH_adv.event.features import feature_names  # noqa: E402

NETWORKS = {"seed 4x512": {"layers": [512, 512, 512, 512], "dropout": 0.3},
            "small 3x128": {"layers": [128, 128, 128], "dropout": 0.1}}
METHODS = ("classifier", "adversarial", "disco")


def toy_events(n: int, background_fraction: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Random features, labels, m_yy and unit weights of the training data's shape."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(feature_names("seed")))).astype(np.float32)
    y = (rng.random(n) >= background_fraction).astype(np.int8)
    mass = rng.uniform(105, 160, n)
    return X, y, mass, np.ones(n)


def seconds_per_epoch(network: dict, method: str, events: tuple[np.ndarray, ...]) -> float:
    """Best of two timed epochs of the method's main phase, per 100k events."""
    X, y, mass, w = events
    config = load_training_config(overrides={"classifier": network, "schedule": {
        "pretrain_classifier_epochs": 0, "pretrain_adversary_epochs": 0, "epochs": 3, "patience": 3}})
    model = DecorrelatedClassifier(config, method, lam=10.0)  # lambda is ignored by the other methods
    model.fit(X, y, mass, w, validation=(X[:2000], y[:2000], mass[:2000], w[:2000]))
    timed = [r.seconds for r in model.history[1:]]
    return min(timed) / len(y) * 1e5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--background-fraction", type=float, default=0.1)
    args = parser.parse_args()
    events = toy_events(args.events, args.background_fraction)
    print(f"{args.events} toy events, {args.background_fraction:.0%} background, {os.cpu_count()} CPU cores")
    print(f"{'network':<14}{'method':<14}{'s/epoch/100k':>14}{'vs classifier':>15}")
    for label, network in NETWORKS.items():
        base = None
        for method in METHODS:
            seconds = seconds_per_epoch(network, method, events)
            base = base or seconds
            print(f"{label:<14}{method:<14}{seconds:>14.2f}{seconds / base:>14.2f}x", flush=True)


if __name__ == "__main__":
    main()
