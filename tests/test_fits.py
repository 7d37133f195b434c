"""Fits on toys: pulls, spurious signal, signal model, sideband chi2, pyhf workspace, categories."""

from __future__ import annotations

import numpy as np
import pytest

from ttH_adv import fits
from ttH_adv.categorize import optimise_channel
from ttH_adv.config import load_config

WINDOW = load_config().mass
EDGES = WINDOW.edges()
SCAN = WINDOW.scan_masses()
CENTRES = 0.5 * (EDGES[:-1] + EDGES[1:])
SIGNAL_PARAMS = {"mu": 125.0, "sigma": 1.7, "alpha_lo": 1.5, "n_lo": 5.0, "alpha_hi": 1.5, "n_hi": 5.0}


def _signal_shape():
    return fits.normalised_shape(lambda m: fits.dscb(m, **SIGNAL_PARAMS), EDGES)


def _exponential(total=2000.0, slope=-1.2):
    return total * fits.normalised_shape(lambda m: fits.FAMILIES["exponential"].density(m, [slope], 105, 160), EDGES)


@pytest.mark.slow
def test_signal_yield_pulls_over_toys():
    rng = np.random.default_rng(11)
    n_signal = 60.0
    signal = n_signal * _signal_shape()
    background = _exponential()
    start = fits.BackgroundFit("exponential", [-1.2], background.sum(), 0, 0, 0, 1, True)
    pulls = []
    for _ in range(120):
        observed = rng.poisson(background + signal)
        model = fits.CategoryModel("toy", observed, signal, np.zeros_like(signal), "exponential", start)
        mu, mu_err, _ = fits.fit_signal_strength([model], EDGES)
        pulls.append((mu - 1.0) / mu_err)
    pulls = np.asarray(pulls)
    assert abs(pulls.mean()) < 0.25 and 0.8 < pulls.std() < 1.2


def test_sideband_fit_of_a_true_exponential():
    rng = np.random.default_rng(12)
    window = ~WINDOW.sideband_bins(EDGES)
    chi2_ndf, slopes, predicted = [], [], []
    for _ in range(20):
        fit = fits.fit_background(rng.poisson(_exponential(20_000)), EDGES, "exponential", ~window, 2.5)
        assert fit.converged and fit.ndf == 16  # 22 bins of 2.5 GeV, 4 in the window, 2 parameters
        chi2_ndf.append(fit.chi2_ndf)
        slopes.append(fit.params[0])
        predicted.append(fit.expected(EDGES)[window].sum())
    assert 0.75 < np.mean(chi2_ndf) < 1.3  # chi2/ndf averages 1 for the right function
    assert np.mean(slopes) == pytest.approx(-1.2, abs=0.02)
    assert np.mean(predicted) == pytest.approx(_exponential(20_000)[window].sum(), rel=0.01)


def test_signal_model_fit_recovers_the_peak():
    rng = np.random.default_rng(13)
    expected = 5000 * _signal_shape()
    counts = rng.poisson(expected).astype(float)
    model = fits.fit_signal(counts, np.maximum(counts, 1), EDGES, WINDOW)
    assert model.params["mu"] == pytest.approx(125.0, abs=0.1)
    assert model.params["sigma"] == pytest.approx(1.7, abs=0.15)


def _signal_model():
    return fits.SignalModel(dict(SIGNAL_PARAMS), 30.0, 1.0)


def test_spurious_signal_passes_a_true_exponential():
    template = _exponential(5000)  # high statistics: the expectation itself
    test = fits.spurious_signal(template, 0.1, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    assert test.passed and test.max_abs_signal < 0.1


def test_spurious_signal_fails_a_badly_wrong_function():
    curved = 5000 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 1.2], 105, 160), EDGES)
    wrong = fits.spurious_signal(curved, 1.0, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    right = fits.spurious_signal(curved, 1.0, EDGES, "exppoly2", _signal_model(), 30.0, 10.0, SCAN)
    assert not wrong.passed and wrong.max_relative_to_expected > 0.1
    assert right.passed


def test_spurious_signal_on_a_sparse_template_is_not_pinned_to_zero():
    """Empty bins of a low-statistics template must not force S = 0 with a tiny error."""
    rng = np.random.default_rng(15)
    sparse = rng.poisson(_exponential(120)).astype(float)  # ~1 event per bin, many empty
    test = fits.spurious_signal(sparse, 1.0, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    errors = [x["error"] for x in test.scan]
    assert min(errors) > 1.0  # ~ sqrt(background under the peak), not ~0
    assert test.max_abs_signal > 0.05


def test_asimov_significance_matches_counting_formula_for_a_clean_peak():
    assert fits.asimov_significance(10.0, 100.0) == pytest.approx(0.9838, abs=1e-3)
    assert fits.asimov_significance(0.0, 100.0) == 0.0


def test_pyhf_workspace_loads_and_fits(small_manifest, config):
    pyhf = pytest.importorskip("pyhf")
    from ttH_adv.fit_analysis import run_fits
    from ttH_adv.workspace import build_workspace

    from conftest import run

    output = run(small_manifest, config, systematics="all")
    result = run_fits(output, config.mass)
    spec = build_workspace(output, result)
    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    assert {"mu", "photon_energy_scale", "photon_id_sf"} <= set(model.config.parameters)
    best = pyhf.infer.mle.fit(workspace.data(model), model)
    assert best[model.config.poi_index] == pytest.approx(1.0, abs=1e-3)  # Asimov data


def test_categorize_finds_the_pure_region_and_respects_the_sideband_minimum():
    rng = np.random.default_rng(14)
    score_s = rng.beta(5, 1, 5000)
    score_d = rng.beta(1, 3, 20_000)
    mass_d = 105 + rng.exponential(30, 20_000)
    mass_d = np.where(mass_d < 160, mass_d, 150)
    mass_s = rng.normal(125, 1.7, 5000)
    empty = np.zeros(0)
    best = optimise_channel(score_s, np.full(5000, 0.01), empty, empty, score_d, mass_d, empty, mass_s, 2, 10, WINDOW)
    assert len(best["boundaries"]) == 2 and best["boundaries"][0] > best["boundaries"][1] > 0.4
    assert min(best["sideband_events"]) >= 10
    strict = optimise_channel(score_s, np.full(5000, 0.01), empty, empty, score_d, mass_d, empty, mass_s, 2, 1000, WINDOW)
    assert min(strict["sideband_events"]) >= 1000 and strict["z"] <= best["z"]
    from ttH_adv.errors import TthAdvError

    with pytest.raises(TthAdvError, match="no 2 categories with >= 50000 sideband events"):
        optimise_channel(score_s, np.full(5000, 0.01), empty, empty, score_d, mass_d, empty, mass_s, 2, 50_000, WINDOW)
