"""Fits on toys: pulls, spurious signal, signal model, sideband chi2, pyhf workspace, categories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from ttH_adv.config import load_config
from ttH_adv.stats import fits
from ttH_adv.stats.categorize import optimise_channel

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


def test_spurious_signal_passes_a_smooth_high_statistics_template():
    template = _exponential(5000)  # the expectation itself, with the statistics of 50x the data
    variance = template / 50
    test = fits.spurious_signal(template, variance, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    assert test.passed and test.max_abs_signal < 0.5
    # Delta_MC: the data's uncertainty on the signal over sqrt(50), the template's extra statistics
    _, data_error = fits.fit_s_plus_b_poisson(template, EDGES, "exponential", _signal_model().shape(EDGES, 129.0))
    assert test.scan[-1]["delta_mc"] == pytest.approx(data_error / np.sqrt(50), rel=0.15)


def test_spurious_signal_fails_a_sculpted_template_and_passes_a_function_that_fits_it():
    curved = 5000 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 1.2], 105, 160), EDGES)
    wrong = fits.spurious_signal(curved, curved / 50, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    right = fits.spurious_signal(curved, curved / 50, EDGES, "exppoly2", _signal_model(), 30.0, 10.0, SCAN)
    assert not wrong.passed and wrong.max_relative_to_expected > 0.1
    assert right.passed
    # a classifier that sculpts a peak under the signal: no smooth function absorbs it
    sculpted = _exponential(5000) * (1 + 0.08 * np.exp(-0.5 * ((CENTRES - 126) / 4) ** 2))
    for family in fits.FAMILY_ORDER:
        assert not fits.spurious_signal(sculpted, sculpted / 50, EDGES, family, _signal_model(), 30.0, 10.0,
                                        SCAN).passed, family


def test_relaxed_criterion_subtracts_twice_the_template_uncertainty():
    curved = 5000 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 1.2], 105, 160), EDGES)
    precise = fits.spurious_signal(curved, curved / 50, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    poor = fits.spurious_signal(curved, curved * 20, EDGES, "exponential", _signal_model(), 30.0, 10.0, SCAN)
    assert poor.delta_mc == pytest.approx(precise.delta_mc * np.sqrt(1000), rel=0.01)  # sqrt of the variance ratio
    for test in (precise, poor):
        worst = max(test.scan, key=lambda x: x["zeta"])
        assert test.max_zeta == pytest.approx(max(abs(worst["signal"]) - 2 * worst["delta_mc"], 0.0))
    assert poor.max_zeta < precise.max_zeta and poor.passed  # a template this poor cannot show a spurious signal


def _sideband_fit(family, chi2, ndf):
    return fits.BackgroundFit(family, [0.0] * fits.FAMILIES[family].n_params, 100.0, 1.0, chi2, ndf,
                              float(stats.chi2.sf(chi2, ndf)), True)


def test_function_choice_needs_the_goodness_of_fit_and_the_f_test():
    from ttH_adv.stats.fit_analysis import choose_function

    config = load_config().fits
    spurious = [{"family": f, "passed": True} for f in fits.FAMILY_ORDER]
    fitted = {f: _sideband_fit(f, 30.0, 16) for f in fits.FAMILY_ORDER}  # p = 0.018 for every family
    assert choose_function(spurious, fitted, config)[0] == "exponential"
    fitted["exponential"] = _sideband_fit("exponential", 40.0, 16)  # p = 0.0008 < 1%: rejected
    family, choice = choose_function(spurious, fitted, config)
    assert family == "powerlaw" and "exponential" not in choice["qualified"]
    fitted["powerlaw"] = _sideband_fit("powerlaw", 40.0, 16)
    fitted["exppoly2"] = _sideband_fit("exppoly2", 20.0, 15)
    assert choose_function(spurious, fitted, config)[0] == "exppoly2"
    # a higher order only when the F-test asks for it: bernstein3 improves chi2 20 -> 19 (not significant) ...
    fitted["bernstein3"] = _sideband_fit("bernstein3", 19.0, 14)
    assert choose_function(spurious, fitted, config)[0] == "exppoly2"
    fitted["bernstein3"] = _sideband_fit("bernstein3", 9.0, 14)  # ... or 20 -> 9: F = 17, p < 0.05
    assert choose_function(spurious, fitted, config)[0] == "bernstein3"
    # nothing passes the spurious-signal test: no function, never a silent default
    assert choose_function([{"family": f, "passed": False} for f in fits.FAMILY_ORDER], fitted, config)[0] is None


def test_template_fraction_is_measured_from_the_data_and_smoothing_keeps_the_shape():
    from ttH_adv.stats.templates import Components, build_template

    rng = np.random.default_rng(21)
    photon = _exponential(1.0, slope=-0.55)     # 0.020 / GeV: the generator's prompt yy
    reducible = _exponential(1.0, slope=-0.72)  # 0.026 / GeV: its fakes
    data = rng.poisson(20_000 * (0.7 * photon + 0.3 * reducible)).astype(float)
    mc = rng.poisson(200_000 * photon) * 0.5  # weighted MC, 10x the data statistics in the yy part
    ntni = rng.poisson(100_000 * reducible).astype(float)
    template = build_template(data, Components(mc, mc * 0.5, ntni), EDGES, WINDOW, load_config().fits)
    assert template.photon_fraction == pytest.approx(0.7, abs=3 * template.photon_fraction_error)
    assert template.photon_fraction_error < 0.15  # similar shapes (0.020 vs 0.026 / GeV): weakly measured
    assert template.data_events == pytest.approx(20_000, rel=0.02)
    # 1 / (0.7^2 / 200k + 0.3^2 / 100k) = 298k effective events: 15x the data, not smoothed ...
    assert not template.smoothed and template.statistics_ratio == pytest.approx(14.9, rel=0.05)
    assert template.effective_events == pytest.approx(template.raw.sum() ** 2 / template.variance.sum())
    sparse_ntni = rng.poisson(300 * reducible).astype(float)  # ... and with sparse parts it is smoothed
    sparse_mc = rng.poisson(40_000 * photon) * 0.5
    smoothed = build_template(data, Components(sparse_mc, sparse_mc * 0.5, sparse_ntni), EDGES, WINDOW,
                              load_config().fits)
    assert smoothed.smoothed and "RBF" in smoothed.kernel
    truth = smoothed.data_events * (smoothed.photon_fraction * photon + (1 - smoothed.photon_fraction) * reducible)
    grouped = [a.reshape(-1, 10).sum(1) for a in (smoothed.values, smoothed.raw, truth)]
    assert np.abs(grouped[0] - grouped[2]).sum() < 0.5 * np.abs(grouped[1] - grouped[2]).sum()  # closer to the truth
    # the length-scale bound keeps a bump of the signal's width out of the smoothed template
    bump = 400 * _signal_shape()
    bumped = build_template(data, Components(sparse_mc, sparse_mc * 0.5,
                                             sparse_ntni + bump / (smoothed.data_events * 0.3 / 300)),
                            EDGES, WINDOW, load_config().fits)
    window = ~WINDOW.sideband_bins(EDGES)
    assert (bumped.values - smoothed.values)[window].sum() < 0.25 * (bumped.raw - smoothed.raw)[window].sum()


def test_a_short_template_takes_its_shapes_from_the_control_selection_and_their_agreement_is_tested():
    from ttH_adv.stats.templates import Components, build_template

    rng = np.random.default_rng(22)
    photon, reducible = _exponential(1.0, slope=-0.55), _exponential(1.0, slope=-0.72)
    data = rng.poisson(2_000 * (0.7 * photon + 0.3 * reducible)).astype(float)

    def components(mc_events, ntni_events, ntni_shape=reducible):
        mc = rng.poisson(mc_events * photon) * 2.0  # weight 2 per MC event
        return Components(mc, mc * 2.0, rng.poisson(ntni_events * ntni_shape).astype(float))

    config = load_config().fits
    own = components(2_000, 600)  # about 2x the data's statistics
    alone = build_template(data, own, EDGES, WINDOW, config)
    assert alone.shapes == "category" and alone.statistics_ratio < config.template_min_statistics and alone.smoothed
    loose = build_template(data, own, EDGES, WINDOW, config, control=components(40_000, 12_000))
    assert loose.shapes == "category + template control" and not loose.smoothed
    assert loose.statistics_ratio > config.template_min_statistics and loose.own_statistics_ratio == pytest.approx(
        alone.statistics_ratio)
    agreement = loose.control_compatibility
    assert agreement["continuum"]["p_value"] > 0.01 and agreement["ntni"]["p_value"] > 0.01
    assert agreement["ntni"]["effective_events"] == pytest.approx([own.ntni.sum(), 12_000], rel=0.05)
    # a control whose reducible shape differs (a steeper fall) is flagged by the chi2 test
    steep = _exponential(1.0, slope=-1.5)
    flagged = build_template(data, own, EDGES, WINDOW, config, control=components(40_000, 12_000, steep))
    assert flagged.control_compatibility["ntni"]["p_value"] < 1e-3
    assert flagged.control_compatibility["continuum"]["p_value"] > 1e-3
    # a category with statistics to spare keeps its own shapes
    rich = build_template(data, components(40_000, 12_000), EDGES, WINDOW, config, control=components(2_000, 600))
    assert rich.shapes == "category" and rich.control_compatibility["ntni"] is not None


def test_bias_toys_of_the_right_function_are_unbiased():
    template = _exponential(2000)
    fitted = fits.bias_toys(template, EDGES, "exponential", _signal_shape(), toys=40, seed=3)
    assert abs(fitted.mean()) < 3 * fitted.std() / np.sqrt(40)
    curved = 2000 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 1.2], 105, 160), EDGES)
    biased = fits.bias_toys(curved, EDGES, "exponential", _signal_shape(), toys=40, seed=3)
    assert abs(biased.mean()) > 5 * biased.std() / np.sqrt(40)


def test_asimov_significance_matches_counting_formula_for_a_clean_peak():
    assert fits.asimov_significance(10.0, 100.0) == pytest.approx(0.9838, abs=1e-3)
    assert fits.asimov_significance(0.0, 100.0) == 0.0


def test_pyhf_workspace_matches_the_histograms_and_recovers_an_injected_signal(small_manifest, config):
    pyhf = pytest.importorskip("pyhf")
    from ttH_adv.stats.fit_analysis import (
        category_slice,
        chosen_background,
        datasets_by_role,
        run_fits,
    )
    from ttH_adv.stats.workspace import build_workspace

    from conftest import run

    output = run(small_manifest, config, systematics="weights")
    assert datasets_by_role(output) == {"data": ["data"], "signal": ["ttH"], "resonant": ["VBF", "WH", "ZH", "ggH", "tH"],
                                        "continuum": ["ttyy", "yyjets"]}  # the generator's roles, via the manifest
    result = run_fits(output, config)
    spec = build_workspace(output, result)
    h = output["histograms"]["mgg"]
    records = {r["category"]: r for r in result["categories"]}
    models, injected = [], []
    for channel in spec["channels"]:
        category, samples = channel["name"], {s["name"]: s for s in channel["samples"]}
        signal = category_slice(h, ["ttH"], "TI", category)[0]
        resonant = category_slice(h, ["ggH", "VBF", "WH", "ZH", "tH"], "TI", category)[0]
        background = chosen_background(records[category], EDGES)
        assert np.allclose(samples["signal"]["data"], signal) and np.allclose(samples["background"]["data"], background)
        assert np.allclose(samples.get("resonant", {"data": 0 * resonant})["data"], resonant)
        normsys = {m["name"]: m["data"] for m in samples["signal"]["modifiers"] if m["type"] == "normsys"}
        assert set(normsys) == set(config.systematics.weight)
        for name, systematic in config.systematics.weight.items():
            assert normsys[name] == pytest.approx({"hi": 1 + systematic.relative, "lo": 1 - systematic.relative},
                                                  rel=1e-6)
        observed = background + 2.0 * signal + resonant  # mu = 2 injected
        injected.append({"name": category, "data": observed.tolist()})
        record = records[category]
        start = fits.BackgroundFit(record["chosen_family"], record["sideband_fits"][record["chosen_family"]]["params"],
                                   background.sum(), 0, 0, 0, 1, True)
        models.append(fits.CategoryModel(category, observed, signal, resonant, record["chosen_family"], start,
                                         record["modelling_uncertainty"]["events"]))
    spec["observations"] = injected
    pyhf.set_backend("numpy", "minuit")
    try:
        workspace = pyhf.Workspace(spec)
        model = workspace.model()
        fitted = pyhf.infer.mle.fit(workspace.data(model), model, return_uncertainties=True)
    finally:
        pyhf.set_backend("numpy", "scipy")
    mu_pyhf, error_pyhf = fitted[model.config.poi_index]
    mu_own, error_own, _ = fits.fit_signal_strength(models, EDGES)
    # the injected mu to a hundredth of its error (the modelling terms leave a shallow direction for the minimisers)
    assert abs(mu_pyhf - 2.0) < 0.01 * error_pyhf and abs(mu_own - 2.0) < 0.01 * error_own
    # both free the background shape and carry the modelling terms; pyhf adds the signal's normalisation
    # systematics (~6%)
    assert error_pyhf == pytest.approx(error_own, rel=0.15)


def test_pyhf_agrees_with_the_own_fit_on_significance_and_limit(small_manifest, config):
    """Same model on both sides (no systematics): pyhf's asymptotic Z and expected limit match the iminuit fit."""
    pytest.importorskip("pyhf")
    from ttH_adv.stats.fit_analysis import WITH_MODELLING, WITHOUT_MODELLING, run_fits
    from ttH_adv.stats.workspace import build_workspace, compare_with_pyhf

    from conftest import run

    output = run(small_manifest, config)
    result = run_fits(output, config)
    spec = build_workspace(output, result)
    terms = [s for c in spec["channels"] for s in c["samples"] if s["name"] == "spurious_signal"]
    assert len(terms) == len(spec["channels"]) > 0  # every fitted category carries its modelling term
    comparison = compare_with_pyhf(result, spec)
    for likelihood in (WITH_MODELLING, WITHOUT_MODELLING):
        own = comparison[likelihood]["own"]
        assert own == {k: result["combined"][likelihood][k] for k in ("significance", "upper_limit")}
        assert own["significance"] > 0 and own["upper_limit"] > 0
        for key in ("significance", "upper_limit"):
            # within 10% is the requirement; the profiled background shape keeps them within 1% here (held
            # fixed, as the export once did, they differ by 3-5%)
            assert abs(comparison[likelihood]["relative_difference"][key]) < 0.02, (likelihood, key, comparison)
    # the modelling term costs sensitivity on both sides
    for side in ("own", "pyhf"):
        assert comparison[WITH_MODELLING][side]["significance"] < comparison[WITHOUT_MODELLING][side]["significance"]


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

    with pytest.raises(TthAdvError, match="not even 1 category with >= 50000 sideband events"):
        optimise_channel(score_s, np.full(5000, 0.01), empty, empty, score_d, mass_d, empty, mass_s, 2, 50_000, WINDOW)
    # more categories than the sidebands support: the most they can, and how many were asked for
    fewer = optimise_channel(score_s, np.full(5000, 0.01), empty, empty, score_d, mass_d, empty, mass_s, 4, 1000,
                             WINDOW)
    assert fewer["requested"] == 4 and 1 <= len(fewer["boundaries"]) <= 3
    assert min(fewer["sideband_events"]) >= 1000 and fewer["boundaries"] == sorted(fewer["boundaries"], reverse=True)


def _bump(size: float) -> np.ndarray:
    """A unit exponential continuum that a classifier sculpted into a bump of relative ``size`` under the signal."""
    return _exponential(1.0) * (1 + size * np.exp(-0.5 * ((CENTRES - 126) / 4) ** 2))


def _toy_output(tmp_path, continuum: np.ndarray, name: str = "out.zip"):
    """Histograms of one category: TI data sidebands, NTNI data and continuum MC of the unit shape ``continuum``
    (exact expectations, 20k data events, MC of 50x their statistics) and 30 signal events."""
    import hist

    from ttH_adv.output import save_output

    sculpted = continuum
    h = hist.Hist(hist.axis.StrCategory(["data", "ttH", "yyjets"], name="dataset"),
                  hist.axis.StrCategory(["TI", "NTNI"], name="region"), hist.axis.StrCategory(["had_1"], name="category"),
                  hist.axis.StrCategory(["nominal"], name="systematic"),
                  hist.axis.Regular(110, 105, 160, name="mgg"), storage=hist.storage.Weight())
    view = h.view()
    blinded = np.where(WINDOW.sideband_bins(EDGES), 1.0, 0.0)
    for (d, r), (values, variances) in {(0, 0): (20_000 * sculpted * blinded, 20_000 * sculpted * blinded),
                                        (0, 1): (200_000 * sculpted, 200_000 * sculpted),
                                        (1, 0): (30 * _signal_shape(), 0.01 * _signal_shape()),
                                        (2, 0): (20_000 * sculpted, 20_000 * sculpted / 50)}.items():
        view["value"][d, r, 0, 0], view["variance"][d, r, 0, 0] = values, variances
    roles = {"data": "data", "ttH": "signal", "yyjets": "continuum"}
    return save_output({"histograms": {"mgg": h}, "cutflow": {}, "metadata": {"roles": roles}}, tmp_path / name)


def _sculpted_output(tmp_path):
    """Histograms whose continuum a classifier sculpted into a bump under the signal (high statistics)."""
    return _toy_output(tmp_path, _bump(0.08))


def test_modelling_uncertainty_enters_the_likelihood_and_costs_a_sculpted_category_its_significance(tmp_path):
    """The spurious-signal nuisance: a sculpted template whose spurious signal is 5x the signal keeps less than
    half its expected significance; a smooth one keeps at least 95%."""
    import dataclasses

    from ttH_adv.output import load_output
    from ttH_adv.stats.fit_analysis import WITH_MODELLING, WITHOUT_MODELLING, run_fits

    # criteria loose enough that the exponential is chosen for the sculpted template too
    loose = dataclasses.replace(load_config(), fits=dataclasses.replace(
        load_config().fits, spurious_fraction_of_signal=10.0, min_gof_probability=0.0, f_test_probability=0.0))
    kept = {}
    for label, size in (("sculpted", 0.08), ("smooth", 0.0)):
        result = run_fits(load_output(_toy_output(tmp_path, _bump(size), f"{label}.zip")), loose)
        record = result["categories"][0]
        assert record["chosen_family"] == "exponential"
        width = record["modelling_uncertainty"]
        spurious = next(s for s in record["spurious_signal"] if s["family"] == "exponential")
        assert width["events"] == pytest.approx(max(spurious["max_abs_signal"], abs(record["bias"]["mean_signal"])))
        assert width["source"] == ("spurious" if spurious["max_abs_signal"] >= abs(record["bias"]["mean_signal"])
                                   else "bias")
        expected = record["expected"]
        kept[label] = expected[WITH_MODELLING]["significance"] / expected[WITHOUT_MODELLING]["significance"]
        assert result["combined"][WITH_MODELLING]["significance"] == pytest.approx(
            expected[WITH_MODELLING]["significance"], rel=1e-3)
        if label == "sculpted":
            assert width["events"] > 5 * record["expected_signal"]  # the bias is five times the signal
            assert expected[WITH_MODELLING]["upper_limit"] > 2 * expected[WITHOUT_MODELLING]["upper_limit"]
        else:
            assert width["events"] < 0.3 * record["expected_signal"]
    assert kept["sculpted"] < 0.5 and kept["smooth"] >= 0.95, kept


def test_fit_marks_a_category_without_an_acceptable_function_and_strict_fails(tmp_path):
    from ttH_adv.app.cli import main

    path = _sculpted_output(tmp_path)
    assert main(["--no-progress", "fit", "--histograms", str(path), "--out", str(tmp_path / "fits")]) == 0
    result = json.loads((tmp_path / "fits" / "fits.json").read_text())
    record = result["categories"][0]
    assert record["chosen_family"] is None and record["status"] == "no acceptable function"
    assert not any(s["passed"] for s in record["spurious_signal"])
    assert record["template"]["effective_over_data"] > 10 and not record["template"]["smoothed"]
    assert result["without_function"] == ["had_1"] and result["combined"] == {}
    assert main(["--no-progress", "fit", "--histograms", str(path), "--out", str(tmp_path / "strict"),
                 "--strict"]) == 1


def test_smoothing_records_a_hyperparameter_at_its_bound_instead_of_warning():
    import warnings

    from ttH_adv.stats.templates import smooth

    centres = 0.5 * (EDGES[1:] + EDGES[:-1])
    observed = np.random.default_rng(1).poisson(100 * np.exp(-(centres - 105) / 30)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would fail here
        mean, kernel = smooth(observed, np.maximum(observed, 1.0), EDGES, (10.0, 500.0))
    assert "at bound: k1__constant_value lower" in kernel  # nothing beyond the exponential mean to resolve
    assert np.all(mean >= 0) and mean.sum() == pytest.approx(observed.sum(), rel=0.05)
