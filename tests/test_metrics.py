"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from ttH_adv.config import load_config
from ttH_adv.stats import metrics as M

BINNING = M.mass_binning(load_config().mass)  # 105-160 GeV in 1 GeV bins, from the configuration


def test_auc_hand_computed_and_weights_act_as_duplicates():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    # pairs (s, b): (0.35, 0.1) win, (0.35, 0.4) lose, (0.8, 0.1) win, (0.8, 0.4) win -> 3/4
    assert M.auc(scores, labels) == pytest.approx(0.75)
    weights = np.array([1, 2, 1, 1.0])
    duplicated = M.auc(np.r_[scores, 0.4], np.r_[labels, 0])
    assert M.auc(scores, labels, weights) == pytest.approx(duplicated)
    assert M.auc(-scores, labels) == pytest.approx(0.25)


def test_rejection_at_fixed_signal_efficiency():
    sig = np.array([0.9, 0.8, 0.7, 0.6])
    bkg = np.array([0.95, 0.75, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    scores = np.r_[sig, bkg]
    labels = np.r_[np.ones(4), np.zeros(8)]
    # 50% signal efficiency: cut at 0.8 keeps sig {0.9, 0.8} and bkg {0.95}: eps_B = 1/8
    eff_b, threshold = M.background_efficiency_at(scores, labels, 0.5)
    assert (eff_b, threshold) == (0.125, 0.8)
    assert M.rejection(eff_b) == 8.0
    # 100% signal efficiency: cut at 0.6 keeps bkg {0.95, 0.75}: R = 4
    assert M.rejection(M.background_efficiency_at(scores, labels, 1.0)[0]) == 4.0
    assert M.rejection(0.0) == float("inf")


def test_jsd_hand_computed():
    assert M.jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert M.jsd([3, 5, 2], [6, 10, 4]) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
    # KL(p||m) = 1/2 log2(2/3) + 1/2 log2(2); KL(q||m) = log2(4/3)
    expected = 0.5 * (0.5 * np.log2(2 / 3) + 0.5) + 0.5 * np.log2(4 / 3)
    assert M.jsd([1, 1], [1, 0]) == pytest.approx(expected)
    assert M.jsd([1, 1], [1, 0]) == pytest.approx(M.jsd([1, 0], [1, 1]))


def test_pass_fail_jsd_and_its_floor():
    rng = np.random.default_rng(1)
    mass = 105 + rng.exponential(30, 200_000)
    mass = mass[mass < 160]
    random_cut = rng.random(len(mass)) < 0.3
    floor = M.jsd_floor(mass, 0.3, None, BINNING, toys=20)
    assert floor.mean > 0 and floor.std < floor.mean
    assert M.pass_fail_jsd(mass, random_cut, None, BINNING) == pytest.approx(floor.mean, abs=5 * floor.std)
    sculpting = np.abs(mass - 125) < 5  # keeps a peak: far above the floor
    assert M.pass_fail_jsd(mass, sculpting, None, BINNING) > 100 * floor.mean
    result = M.jsd_at_signal_efficiency(-np.abs(mass - 125), mass, -5, None, BINNING)
    assert result["ratio"] > 100 and result["binning"] == "105-160 GeV, 55 bins"


def test_binnings_from_the_window_and_from_quantiles():
    assert BINNING.bins == 55 and BINNING.edges[0] == 105 and BINNING.edges[-1] == 160
    coarse = BINNING.coarsened(11)
    assert coarse.describe() == "105-160 GeV, 11 bins" and np.allclose(np.diff(coarse.edges), 5.0)
    z = np.random.default_rng(0).normal(size=10_000)
    q = M.Binning.quantiles(z, 20)
    counts = np.histogram(z, q.edges)[0]
    assert q.bins == 20 and counts.min() >= 490 and counts.max() <= 510  # equal shares
    assert q.coarsened(5).bins == 5 and "quantile bins" in q.describe()
    with pytest.raises(ValueError, match="single value"):
        M.Binning.quantiles(np.ones(10), 5)


def test_floor_shrinks_with_statistics():
    rng = np.random.default_rng(2)
    small = M.jsd_floor(rng.uniform(105, 160, 2_000), 0.5, None, BINNING, toys=20).mean
    large = M.jsd_floor(rng.uniform(105, 160, 200_000), 0.5, None, BINNING, toys=20).mean
    assert large < small / 30  # JSD of pure noise falls like 1/N


def _textbook_dcor(x, y):
    a = np.abs(x[:, None] - x[None, :])
    b = np.abs(y[:, None] - y[None, :])
    A = a - a.mean(0) - a.mean(1)[:, None] + a.mean()
    B = b - b.mean(0) - b.mean(1)[:, None] + b.mean()
    return np.sqrt((A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean()))


def test_distance_correlation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    assert M.distance_correlation(x, 2 * x + 1) == pytest.approx(1.0)
    y = x**2  # uncorrelated (Pearson ~ 0) but dependent
    assert M.distance_correlation(x, y) == pytest.approx(_textbook_dcor(x, y))
    assert abs(M.correlations(x, y)["pearson"]) < 0.2 < M.correlations(x, y)["distance"]
    assert M.distance_correlation(x, rng.normal(size=300)) < 0.15


def test_overtraining_ks():
    rng = np.random.default_rng(4)
    same = M.overtraining_ks(rng.normal(size=2000), rng.normal(size=2000))
    shifted = M.overtraining_ks(rng.normal(size=2000), rng.normal(0.5, size=2000))
    assert same["p_value"] > 0.001 > shifted["p_value"]
