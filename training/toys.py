"""Reference toys for the decorrelation methods (no TensorFlow needed to draw them)."""

from __future__ import annotations

import numpy as np


def pivot_toy(n: int, rng: np.random.Generator, z: float | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Louppe, Kagan & Cranmer (2017), section 5.1: (X, y, z).

    Signal x ~ N((0, 0), [[1, -0.5], [-0.5, 1]]); background x ~ N((1, 1 + z), 1) with the
    nuisance z ~ N(0, 1) (or fixed to ``z``), which a pivotal classifier must not depend on.
    """
    y = (rng.random(n) < 0.5).astype(np.int8)
    zs = rng.normal(size=n) if z is None else np.full(n, float(z))
    signal = rng.multivariate_normal([0, 0], [[1, -0.5], [-0.5, 1]], n)
    background = rng.normal(size=(n, 2)) + np.stack([np.ones(n), 1 + zs], axis=1)
    return np.where(y[:, None] == 1, signal, background).astype(np.float32), y, zs


def in_other_units(z: np.ndarray) -> np.ndarray:
    """The nuisance expressed in other units (1000 z + 5000): decorrelation must not depend on them."""
    return 1000.0 * np.asarray(z) + 5000.0


def score_dependence(model, rng: np.random.Generator, n: int = 40_000, bins: int = 20) -> float:
    """JSD between the background score densities at z = -1 and z = +1 (quantile bins of the pooled scores);
    the model takes the nuisance in ``in_other_units``."""
    from ttH_adv.stats import metrics

    scores = []
    for value in (-1.0, 1.0):
        X, y, z = pivot_toy(n, rng, value)
        scores.append(model.predict(X[y == 0], in_other_units(z[y == 0])))
    edges = metrics.Binning.quantiles(np.concatenate(scores), bins).edges
    return metrics.jsd(*(np.histogram(s, edges)[0] for s in scores))
