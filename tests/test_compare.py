"""The comparison over seeds: matched flatness, the ceiling at a row's flatness, spreads, separation, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from ttH_adv.stats.compare import (
    ComparisonRow,
    Separation,
    TrainedResult,
    aggregate,
    r50_at_flatness,
    r50_over_ceiling,
    separation,
)
from ttH_adv.stats.training_results import TrainingMetrics


def test_r50_at_matched_flatness_is_interpolated_along_a_synthetic_pareto_curve():
    # a Pareto curve R50 = 3 + 4 log(JSD/floor), sampled at five lambdas, out of order
    flatness = np.array([3.0, 0.9, 1.4, 2.0, 1.0])
    points = list(zip(flatness, 3 + 4 * np.log(flatness), strict=True))
    for target in (1.2, 1.5):
        lower = max(p for p in points if p[0] <= target)
        upper = min(p for p in points if p[0] >= target)
        expected = lower[1] + (upper[1] - lower[1]) * (target - lower[0]) / (upper[0] - lower[0])
        assert r50_at_flatness(points, target) == pytest.approx(expected)
    assert r50_at_flatness(points, 1.4) == pytest.approx(3 + 4 * np.log(1.4))  # a scanned point itself
    assert r50_at_flatness(points, 0.5) is None and r50_at_flatness(points, 4.0) is None  # not extrapolated
    assert r50_at_flatness(points, 0.5, clamp=True) == pytest.approx(3 + 4 * np.log(0.9))
    assert r50_at_flatness([], 1.2) is None


def _result(method, seed, r50, ratio50, curve=None, feature_set="seed"):
    metrics = {"auc": 0.8, "r50": r50, "r80": r50 / 3, "ratio50": ratio50, "ratio80": ratio50,
               "unconstrained": method == "classifier"}
    if curve is not None:
        metrics["ceiling_curve"] = [{"auc": 0.8, "r50": y, "r80": y / 3, "ratio50": x, "ratio80": x, "inverse_jsd50": 1 / x,
                                     "inverse_jsd80": 1 / x, "events_per_bin": 120} for x, y in curve]
    return TrainedResult(f"{feature_set}.{method}_seed{seed}", method, 10.0 if method == "adversarial" else 0.0,
                         feature_set, None, TrainingMetrics.from_dict(metrics), seed)


def test_r50_over_the_ceiling_is_taken_at_the_rows_own_flatness():
    curve = [(0.7, 4.0), (1.2, 4.5), (2.0, 5.5), (12.0, 15.0)]
    results = [_result("classifier", 1, 15.0, 12.0, curve), _result("adversarial", 1, 5.0, 1.6)]
    ratio, bound = r50_over_ceiling(results[1], results)
    assert ratio == pytest.approx(5.0 / 5.0) and not bound  # the ceiling at 1.6: 4.5 + 0.5 x 2.0
    flatter = _result("adversarial", 2, 4.2, 0.5)  # flatter than any map: divided by the flattest, a lower bound
    ratio, bound = r50_over_ceiling(flatter, [*results, flatter])
    assert ratio == pytest.approx(4.2 / 4.0) and bound
    other = _result("adversarial", 1, 5.0, 1.6, feature_set="extended")  # no unconstrained row of its features
    assert r50_over_ceiling(other, [*results, other]) == (None, False)


def _row(method, seed, z):
    return ComparisonRow.from_dict({
        "label": f"seed.{method}_{seed}", "feature_set": "seed", "method": method, "lambda": None, "seed": seed,
        "ceiling_lower_bound": False, "kept_epochs": [], "categories": 7, "categories_requested": 7,
        "with_function": 7, "fallback": 0, "exponential_passes": 7, "templates_with_power": 1, "zeta_positive": 0,
        "template_ratios": [10.0], "z": z, "r50": 5.0 + seed, "jsd50_over_floor": 1.0, "jsd80_over_floor": 1.0,
        "r50_over_ceiling": 1.0, "z_statistical_and_modelling": z, "z_statistical": z, "z_passing": z, "mu_95": None,
        "worst_bias_over_allowance": None, "worst_bias_category": None, "z_by_channel": {}})


def test_rows_spread_over_their_seeds_and_rank_only_where_separated():
    seeds = (1, 2, 3, 4, 5)
    noise = np.array([0.03, -0.02, 0.01, 0.04, -0.01])  # shared by both methods seed by seed: it cancels in pairs
    rows = [_row("a", s, 1.0 + n) for s, n in zip(seeds, noise, strict=True)]
    rows += [_row("b", s, 0.95 + n + d) for s, n, d in zip(seeds, noise, [0.01, -0.01, 0.0, 0.005, -0.005],
                                                            strict=True)]
    table = aggregate(rows)
    assert [e.method for e in table] == ["a", "b"]
    a = table[0]
    assert a.z.mean == pytest.approx(np.mean(1.0 + noise)) and a.z.sd == pytest.approx(
        np.std(1.0 + noise, ddof=1)) and a.z.n == 5
    assert a.z.values == pytest.approx(list(1.0 + noise)) and a.seeds == list(seeds)
    assert a.r50.mean == pytest.approx(8.0)
    assert a.next_row.separated  # 0.05 +/- 0.004: the paired difference, not the rows' spreads, decides
    assert a.z.sd > 0.3 * (a.z.mean - table[1].z.mean)  # ... though the spreads overlap
    close = [_row("a", s, 1.0 + n) for s, n in zip(seeds, noise, strict=True)]
    close += [_row("b", s, 1.0 + n + d) for s, n, d in zip(seeds, noise, [0.02, -0.03, 0.01, -0.02, 0.015],
                                                           strict=True)]
    assert not aggregate(close)[0].next_row.separated
    # only the seeds both rows have are paired; one seed separates nothing
    assert separation(aggregate(rows[:1])[0], aggregate(rows[5:6])[0]) == Separation(1, pytest.approx(0.05 - 0.01),
                                                                                     None, False)


def test_seeds_train_independently_at_the_lambda_the_scan_chooses(small_manifest, config, tmp_path):
    """train with two seeds and a lambda scan: the scan on the first seed, the second at the chosen lambda, its
    figures its own (another initialisation), and the first seed's training unchanged by the second's."""
    pytest.importorskip("tensorflow")
    from training.config import load_training_config
    from training.run import run_training

    from conftest import run

    run(small_manifest, config, dump_dir=str(tmp_path / "dump"))
    tiny = load_training_config(overrides={"classifier": {"layers": [16], "dropout": 0.0},
                                           "schedule": {"epochs": 2, "pretrain_classifier_epochs": 1,
                                                        "pretrain_adversary_epochs": 1, "patience": 2},
                                           "data": {"min_jets": 2}})
    runs = [("classifier", 0.0), ("adversarial", 1.0), ("adversarial", 10.0)]
    summary = run_training(tmp_path / "dump", tmp_path / "two", tiny, runs, config, seeds=2)
    choice = summary.lambda_choice["adversarial"]
    assert [p.lam for p in choice.scan] == [1.0, 10.0] and choice.seed == 1
    by = {(r.method, r.lam, r.seed): r for r in summary.results}
    assert set(by) == {("classifier", 0.0, 1), ("classifier", 0.0, 2), ("adversarial", 1.0, 1),
                       ("adversarial", 10.0, 1), ("adversarial", choice.chosen, 2)}
    assert {r.name for r in summary.results} >= {"classifier_seed1", "classifier_seed2"}
    assert [r.in_comparison for r in summary.results if r.method == "adversarial"].count(False) == 1
    first, second = by[("classifier", 0.0, 1)].metrics, by[("classifier", 0.0, 2)].metrics
    assert first.auc != second.auc  # another seed, another network
    assert all(len(r.metrics.kept_epochs) == 2 for r in summary.results)  # per fold
    alone = run_training(tmp_path / "dump", tmp_path / "one", tiny, [("classifier", 0.0)], config)
    assert alone.results[0].metrics.auc == first.auc  # seed 1 is seed 1, with or without seed 2
