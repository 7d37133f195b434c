"""Performance and sculpting metrics (numpy/scipy only), used by training, fits and reports.

Conventions:

* scores: larger means more signal-like; a cut keeps ``score >= threshold``;
* all functions take optional per-event weights (default 1);
* JSD is base 2, reported as a fraction in [0, 1]; the binning of the protected variable is part
  of every JSD result (``Binning``; for m_yy ``mass_binning(config.mass)``: the configured window
  in ``jsd_bin_width`` bins, one source of truth);
* the statistical floor of a JSD is the same JSD for random selections with the same
  efficiency (mean and spread over toys): sculpting is only meaningful relative to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Binning:
    """Bin edges of the protected variable (m_yy or any other): part of every JSD result."""

    boundaries: tuple[float, ...]
    regular: bool = False
    unit: str = ""

    @classmethod
    def uniform(cls, low: float, high: float, bins: int, unit: str = "GeV") -> Binning:
        """``bins`` equal bins over [low, high]."""
        return cls(tuple(np.linspace(low, high, bins + 1).tolist()), True, unit)

    @classmethod
    def quantiles(cls, values: np.ndarray, bins: int) -> Binning:
        """Bins holding equal shares of ``values`` (for a protected variable without a configured range)."""
        edges = np.unique(np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            raise ValueError("the protected variable takes a single value: it cannot be binned")
        return cls(tuple(edges.tolist()))

    @property
    def edges(self) -> np.ndarray:
        """Bin edges."""
        return np.asarray(self.boundaries)

    @property
    def bins(self) -> int:
        """Number of bins."""
        return len(self.boundaries) - 1

    def coarsened(self, bins: int) -> Binning:
        """At most ``bins`` bins, each a union of adjacent bins of this binning."""
        if bins >= self.bins:
            return self
        take = np.unique(np.round(np.linspace(0, self.bins, bins + 1)).astype(int))
        return Binning(tuple(self.edges[take].tolist()), self.regular and self.bins % bins == 0, self.unit)

    def describe(self) -> str:
        """E.g. '105-160 GeV, 55 bins' or '20 quantile bins over -3.1-2.9'."""
        low, high = self.boundaries[0], self.boundaries[-1]
        unit = f" {self.unit}" if self.unit else ""
        if self.regular:
            return f"{low:g}-{high:g}{unit}, {self.bins} bins"
        return f"{self.bins} quantile bins over {low:.4g}-{high:.4g}{unit}"


def mass_binning(window) -> Binning:
    """The m_yy binning of JSD figures: the configured window in ``jsd_bin_width`` bins."""
    return Binning.uniform(window.low, window.high, round((window.high - window.low) / window.jsd_bin_width))


def _weights(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)


def roc_curve(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted ROC: (background efficiency, signal efficiency, thresholds), thresholds descending."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    w = _weights(scores, weights)
    order = np.argsort(-scores, kind="mergesort")
    s, y, w = scores[order], labels[order], w[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each threshold
    tp = np.cumsum(w * y)[distinct]
    fp = np.cumsum(w * ~y)[distinct]
    eff_s = np.r_[0.0, tp / tp[-1]]
    eff_b = np.r_[0.0, fp / fp[-1]]
    return eff_b, eff_s, np.r_[np.inf, s[distinct]]


def auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the weighted ROC curve (trapezoidal; 0.5 for a random score)."""
    eff_b, eff_s, _ = roc_curve(scores, labels, weights)
    return float(np.trapezoid(eff_s, eff_b))


def background_efficiency_at(scores: np.ndarray, labels: np.ndarray, signal_efficiency: float,
                             weights: np.ndarray | None = None) -> tuple[float, float]:
    """(background efficiency, score threshold) where the signal efficiency reaches the target."""
    eff_b, eff_s, thresholds = roc_curve(scores, labels, weights)
    i = int(np.searchsorted(eff_s, signal_efficiency, side="left"))
    i = min(max(i, 1), len(eff_s) - 1)
    return float(eff_b[i]), float(thresholds[i])


def rejection(background_efficiency: float) -> float:
    """Background rejection 1/eps_B (R50 at the 50% signal-efficiency cut); infinite where no background passes."""
    return 1.0 / background_efficiency if background_efficiency > 0 else float("inf")


def jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two histograms (normalised here)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def mass_histogram(mass: np.ndarray, weights: np.ndarray | None, binning: Binning) -> np.ndarray:
    """Weighted m_yy histogram with the given binning."""
    return np.histogram(mass, bins=binning.edges, weights=_weights(mass, weights))[0]


def pass_fail_jsd(mass: np.ndarray, passed: np.ndarray, weights: np.ndarray | None, binning: Binning) -> float:
    """JSD between the m_yy shapes of events passing and failing a selection."""
    w = _weights(mass, weights)
    passed = np.asarray(passed, dtype=bool)
    return jsd(mass_histogram(mass[passed], w[passed], binning), mass_histogram(mass[~passed], w[~passed], binning))


@dataclass(frozen=True)
class JsdFloor:
    mean: float
    std: float
    toys: int


def jsd_floor(mass: np.ndarray, efficiency: float, weights: np.ndarray | None, binning: Binning,
              toys: int = 50, seed: int = 0) -> JsdFloor:
    """JSD of random selections keeping a fraction ``efficiency`` of events: the statistical floor."""
    rng = np.random.default_rng(seed)
    values = [pass_fail_jsd(mass, rng.random(len(mass)) < efficiency, weights, binning) for _ in range(toys)]
    return JsdFloor(float(np.mean(values)), float(np.std(values)), toys)


def jsd_at_signal_efficiency(scores_bkg: np.ndarray, mass_bkg: np.ndarray, threshold: float,
                             weights: np.ndarray | None, binning: Binning, toys: int = 50) -> dict[str, float]:
    """Sculpting of a cut ``score >= threshold`` on background: JSD, its floor and their ratio."""
    passed = np.asarray(scores_bkg) >= threshold
    w = _weights(mass_bkg, weights)
    efficiency = float(w[passed].sum() / w.sum())
    value = pass_fail_jsd(mass_bkg, passed, w, binning)
    floor = jsd_floor(mass_bkg, efficiency, w, binning, toys)
    return {"jsd": value, "floor": floor.mean, "floor_std": floor.std, "ratio": value / floor.mean,
            "inverse_jsd": 1.0 / value if value > 0 else float("inf"), "background_efficiency": efficiency,
            "binning": binning.describe()}


def distance_correlation(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                         max_events: int = 4000, seed: int = 0) -> float:
    """Weighted distance correlation (Szekely) of x and y, on a random subsample of at most max_events."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = _weights(x, weights)
    if len(x) > max_events:
        keep = np.random.default_rng(seed).choice(len(x), max_events, replace=False)
        x, y, w = x[keep], y[keep], w[keep]
    w = w / w.sum()

    def centred(v: np.ndarray) -> np.ndarray:
        d = np.abs(v[:, None] - v[None, :])
        row = d @ w
        return d - row[:, None] - row[None, :] + w @ row

    a, b = centred(x), centred(y)
    ab = w @ (a * b) @ w
    aa = w @ (a * a) @ w
    bb = w @ (b * b) @ w
    return float(np.sqrt(max(ab, 0.0) / np.sqrt(aa * bb))) if aa > 0 and bb > 0 else 0.0


def correlations(score: np.ndarray, mass: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Pearson, Spearman and distance correlation of a score with m_yy."""
    return {"pearson": float(stats.pearsonr(score, mass)[0]),
            "spearman": float(stats.spearmanr(score, mass)[0]),
            "distance": distance_correlation(score, mass, weights)}


def overtraining_ks(train_scores: np.ndarray, test_scores: np.ndarray) -> dict[str, float]:
    """Kolmogorov-Smirnov comparison of train and test score distributions."""
    result = stats.ks_2samp(train_scores, test_scores)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}
