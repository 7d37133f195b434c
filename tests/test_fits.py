"""Fits on toys: pulls, spurious signal, signal model, goodness of fit, templates, systematics, pyhf, categories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from ttH_adv.config import load_config
from ttH_adv.stats import fits, likelihood
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


def test_signal_yield_pulls_over_toys():
    rng = np.random.default_rng(11)
    n_signal = 60.0
    signal = n_signal * _signal_shape()
    background = _exponential()
    start = fits.BackgroundFit("exponential", [-1.2], background.sum(), 0, 0, 0, 1, True)
    pulls = []
    for _ in range(120):
        observed = rng.poisson(background + signal)
        model = likelihood.CategoryModel("toy", observed, signal, np.zeros_like(signal), "exponential", start)
        mu, mu_err, _ = likelihood.fit_signal_strength([model], EDGES)
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
        chi2_ndf.append(fit.deviance_ndf)
        slopes.append(fit.params[0])
        predicted.append(fit.expected(EDGES)[window].sum())
    assert 0.75 < np.mean(chi2_ndf) < 1.3  # the deviance per degree of freedom averages 1 for the right function
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
    assert test.scan[-1].delta_mc == pytest.approx(data_error / np.sqrt(50), rel=0.15)


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
        worst = test.worst()
        assert test.max_zeta == pytest.approx(max(abs(worst.signal) - 2 * worst.delta_mc, 0.0))
    assert poor.max_zeta < precise.max_zeta and poor.passed  # a template this poor cannot show a spurious signal


def _sideband_fit(family, deviance, ndf):
    return fits.BackgroundFit(family, [0.0] * fits.FAMILIES[family].n_params, 100.0, 1.0, deviance, ndf,
                              float(stats.chi2.sf(deviance, ndf)), True)


def _tested(family: str, passed: bool):
    from ttH_adv.stats.fit_results import SpuriousTest

    return SpuriousTest(family, 0.0, 0.0, 0.0, 0.0, 0.0, passed)


def test_function_choice_needs_the_goodness_of_fit_and_an_f_test_of_nested_families_only():
    from ttH_adv.stats.fit_analysis import choose_function

    config = load_config().fits
    spurious = [_tested(f, True) for f in fits.FAMILY_ORDER]
    fitted = {f: _sideband_fit(f, 30.0, 16) for f in fits.FAMILY_ORDER}  # p = 0.018 for every family
    assert choose_function(spurious, fitted, config)[0] == "exponential"
    fitted["exponential"] = _sideband_fit("exponential", 40.0, 16)  # p = 0.0008 < 1%: rejected
    family, choice = choose_function(spurious, fitted, config)
    assert family == "powerlaw" and "exponential" not in choice.qualified
    fitted["powerlaw"] = _sideband_fit("powerlaw", 40.0, 16)
    assert choose_function(spurious, fitted, config)[0] == "exppoly2"
    # the next order of the chosen family only when the F-test asks for it: exponential -> exppoly2 ...
    fitted["exponential"] = _sideband_fit("exponential", 20.0, 16)
    fitted["exppoly2"] = _sideband_fit("exppoly2", 19.0, 15)  # a gain of 1: chance
    family, choice = choose_function(spurious, fitted, config)
    assert family == "exponential" and choice.f_tests[0].high == "exppoly2"
    fitted["exppoly2"] = _sideband_fit("exppoly2", 9.0, 15)   # 20 -> 9: F = 18, p < 0.05
    assert choose_function(spurious, fitted, config)[0] == "exppoly2"
    # ... and never a family that does not contain the chosen one: a much better Bernstein is not asked
    fitted["exppoly2"] = _sideband_fit("exppoly2", 19.0, 15)
    fitted["bernstein5"] = _sideband_fit("bernstein5", 2.0, 11)
    family, choice = choose_function(spurious, fitted, config)
    assert family == "exponential" and [t.high for t in choice.f_tests] == ["exppoly2"]
    with pytest.raises(ValueError, match="nested"):
        fits.f_test_probability(fitted["exponential"], fitted["bernstein5"])
    # within the Bernstein chain the orders climb while each step is significant
    spurious = [_tested(f, f.startswith("bernstein")) for f in fits.FAMILY_ORDER]
    fitted.update({"bernstein2": _sideband_fit("bernstein2", 30.0, 15), "bernstein3": _sideband_fit("bernstein3", 12.0, 14),
                   "bernstein4": _sideband_fit("bernstein4", 11.5, 13)})
    assert choose_function(spurious, fitted, config)[0] == "bernstein3"
    # nothing passes the spurious-signal test: no function from the rule (the fall-back is the caller's)
    assert choose_function([_tested(f, False) for f in fits.FAMILY_ORDER], fitted, config)[0] is None


def test_a_sideband_fit_that_did_not_converge_is_never_the_function():
    """On one or two sideband events exp(a m + b m^2) can run to a spike on them (MIGRAD invalid), empty under
    the peak: neither the rule, its F-test nor the fall-back may take it."""
    from dataclasses import replace

    from ttH_adv.stats.fit_analysis import GoodnessOfFit, choose_function, fallback_function
    from ttH_adv.stats.fit_results import SpuriousTest

    config = load_config().fits
    spurious = [_tested(f, True) for f in fits.FAMILY_ORDER]
    fitted = {f: _sideband_fit(f, 20.0, 16) for f in fits.FAMILY_ORDER}
    fitted["exppoly2"] = replace(_sideband_fit("exppoly2", 9.0, 15), converged=False)  # F-test p < 0.05
    assert choose_function(spurious, fitted, config)[0] == "exponential"
    fitted["exponential"] = replace(fitted["exponential"], converged=False)
    assert choose_function(spurious, fitted, config)[0] == "powerlaw"
    smallest_first = [SpuriousTest(f, float(i), 0.0, 0.0, 0.0, 0.0, False) for i, f in
                      enumerate(["exppoly2", "exponential", "bernstein2"])]
    gof = GoodnessOfFit(fitted, float("inf"), EDGES, WINDOW.sideband_bins(EDGES), 2.5, config)
    assert fallback_function(smallest_first, gof) == "bernstein2"


def test_goodness_of_fit_from_refitted_toys_where_the_sidebands_are_sparse():
    rng = np.random.default_rng(15)
    side = WINDOW.sideband_bins(EDGES)
    right, wrong = [], []
    for _ in range(6):
        counts = rng.poisson(_exponential(60)).astype(float)  # ~50 sideband events
        good = fits.fit_background(counts, EDGES, "exponential", side, 2.5)
        right.append(fits.gof_p_value_from_toys(good, EDGES, side, 2.5, toys=60))
        peaked = counts + rng.poisson(60 * np.exp(-0.5 * ((CENTRES - 110) / 1.5) ** 2) / 10)  # a sharp structure
        wrong.append(fits.gof_p_value_from_toys(fits.fit_background(peaked, EDGES, "exponential", side, 2.5),
                                                EDGES, side, 2.5, toys=60))
    assert min(right) > 0.02 and np.median(right) > 0.2
    assert max(wrong) < 0.05


def _category_counts(rng, inclusive_events, efficiency, photon_share=0.7):
    """An inclusive selection's continuum MC (weight 0.5 per event) and NTNI data of the generator's two slopes, and
    the category selected from them with ``efficiency``(m) per bin."""
    from ttH_adv.stats.templates import Components

    photon, reducible = _exponential(1.0, slope=-0.55), _exponential(1.0, slope=-0.72)
    mc_all = rng.poisson(inclusive_events * photon).astype(float)
    ntni_all = rng.poisson(0.3 * inclusive_events * reducible).astype(float)
    mc_cat, ntni_cat = rng.binomial(mc_all.astype(int), efficiency), rng.binomial(ntni_all.astype(int), efficiency)
    inclusive = Components(0.5 * mc_all, 0.25 * mc_all, ntni_all)
    own = Components(0.5 * mc_cat, 0.25 * mc_cat, ntni_cat.astype(float))
    expected = {"photon": photon * efficiency, "reducible": reducible * efficiency}
    return own, inclusive, {k: v / v.sum() for k, v in expected.items()}, photon_share


def test_a_template_with_statistics_to_spare_keeps_its_own_shapes_and_its_replicas_measure_them():
    from ttH_adv.stats.templates import OWN, Components, build_template

    rng = np.random.default_rng(21)
    photon, reducible = _exponential(1.0, slope=-0.55), _exponential(1.0, slope=-0.72)
    data = rng.poisson(2_000 * (0.7 * photon + 0.3 * reducible)).astype(float)
    mc = rng.poisson(200_000 * photon) * 0.5  # weighted MC, 100x the data in the yy part
    ntni = rng.poisson(100_000 * reducible).astype(float)
    template = build_template(data, Components(mc, mc * 0.5, ntni), EDGES, WINDOW, load_config().fits)
    assert template.method == OWN
    assert template.photon_fraction == pytest.approx(0.7, abs=3 * template.photon_fraction_error)
    side = WINDOW.sideband_bins(EDGES)
    assert template.values[side].sum() == pytest.approx(data[side].sum(), rel=1e-3)  # the data's sideband count
    # 1 / (f^2 / 200k + (1 - f)^2 / 100k) effective events (173k at f = 0.7), measured by the 200 replicas
    f = template.photon_fraction
    assert template.statistics_ratio == pytest.approx(1 / (f**2 / 200_000 + (1 - f) ** 2 / 100_000)
                                                      / template.data_events, rel=0.15)
    assert template.effective_events == pytest.approx(template.values.sum() ** 2 / template.variance.sum())


def test_the_yy_fraction_comes_from_the_ti_and_ntni_counts_where_the_shapes_cannot_tell_the_components_apart():
    """Prompt and fake photon pairs of the same m_yy shape: a fit of the shapes to the TI sidebands has nothing to
    measure the yy fraction with, the TI and NTNI counts (a fake fails identification or isolation 40 times as often
    as it passes, a prompt pair 0.3 times) measure it."""
    from ttH_adv.stats.templates import (
        REGIONS,
        SIDEBAND_FIT,
        Components,
        RegionSpectra,
        build_template,
    )

    rng = np.random.default_rng(25)
    shape = _exponential(1.0)
    prompt, fakes = 9_000.0, 1_000.0  # TI pairs in the data: a yy fraction of 0.9
    data_ti = rng.poisson((prompt + fakes) * shape).astype(float)
    ntni = rng.poisson((0.3 * prompt + 40.0 * fakes) * shape).astype(float)
    mc = rng.poisson(500_000 * shape) * 0.2
    regions = RegionSpectra(mc, 0.3 * mc, 100 * shape, 4_000 * shape)  # simulated: r_yy = 0.3, r_fake = 40
    config = load_config().fits
    fitted = build_template(data_ti, Components(mc, mc * 0.2, ntni), EDGES, WINDOW, config)
    measured = build_template(data_ti, Components(mc, mc * 0.2, ntni, regions=regions), EDGES, WINDOW, config)
    assert fitted.photon_fraction_method == SIDEBAND_FIT and fitted.photon_fraction_error > 0.15
    assert measured.photon_fraction_method == REGIONS
    assert measured.photon_fraction == pytest.approx(0.9, abs=3 * measured.photon_fraction_error)
    assert measured.photon_fraction_error < 0.01
    side = WINDOW.sideband_bins(EDGES)
    assert measured.values[side].sum() == pytest.approx(data_ti[side].sum(), rel=1e-6)  # the data's sideband count


def test_the_generated_data_s_yy_fraction_is_the_one_the_reducible_mc_predicts(fitted_with_systematics):
    """The generator's data hold the reducible MC's events (the same model, normalised to the data's luminosity):
    the fraction each category measures from its TI and NTNI counts is one minus the simulated fakes' TI share."""
    from ttH_adv.output import MASS_HISTOGRAM, category_slice
    from ttH_adv.stats.fit_analysis import datasets_by_role
    from ttH_adv.stats.templates import REGIONS

    output, result, _, _ = fitted_with_systematics
    h, by_role, side = output["histograms"][MASS_HISTOGRAM], datasets_by_role(output), WINDOW.sideband_bins(EDGES)
    checked = 0
    for category in result.categories:
        facts = category.template
        if facts is None:
            continue
        data = category_slice(h, by_role["data"], "TI", category.category)[0][side].sum()
        fakes = category_slice(h, by_role["reducible"], "TI", category.category)[0][side].sum()
        assert facts.photon_fraction_method == REGIONS
        assert facts.photon_fraction == pytest.approx(1 - fakes / data, abs=3 * facts.photon_fraction_error + 0.02)
        checked += 1
    assert checked >= 2


def test_a_template_with_empty_sidebands_keeps_the_data_sideband_count_and_its_peak():
    """A category the score cut has confined to the signal window (a sculpting classifier's tightest one): its
    components hold no sideband event, the data one.  The yield comes from the one-event floor of the shapes,
    not from a fit that shrinks the template to nothing, so the spurious-signal test sees the peak."""
    from ttH_adv.stats.templates import Components, build_template

    rng = np.random.default_rng(24)
    peak = np.exp(-0.5 * ((CENTRES - 125) / 2.0) ** 2) * ~WINDOW.sideband_bins(EDGES)
    mc = rng.poisson(400 * peak / peak.sum()) * 0.5
    ntni = rng.poisson(15 * peak / peak.sum()).astype(float)
    side = WINDOW.sideband_bins(EDGES)
    assert mc[side].sum() == 0 and ntni[side].sum() == 0
    data = np.zeros_like(CENTRES)
    data[np.flatnonzero(side)[0]] = 1.0
    template = build_template(data, Components(mc, mc * 0.5, ntni), EDGES, WINDOW, load_config().fits)
    assert template.values[side].sum() == pytest.approx(1.0, rel=0.05)  # the data's sideband count
    # one event of a component's ~400 effective MC (or 15 NTNI) events lies in the sidebands: the rest under the peak
    assert template.values.sum() > 10
    assert template.statistics_ratio < 1e3


def test_a_short_category_takes_the_inclusive_shapes_times_its_efficiency_in_m_yy():
    from ttH_adv.stats.templates import EFFICIENCY, OWN, build_template

    rng = np.random.default_rng(22)
    falling = 0.02 * np.exp(-(CENTRES - 105) / 80)  # a smooth efficiency: the channel's requirements
    own, inclusive, expected, share = _category_counts(rng, 400_000, falling)
    data = rng.poisson(2_000 * (share * expected["photon"] + (1 - share) * expected["reducible"]))
    config = load_config().fits
    alone = build_template(data.astype(float), own, EDGES, WINDOW, config)
    assert alone.method == OWN and alone.statistics_ratio < 5  # what was once smoothed by a Gaussian process
    template = build_template(data.astype(float), own, EDGES, WINDOW, config, inclusive)
    assert template.method == EFFICIENCY and template.statistics_ratio > 5 * alone.statistics_ratio
    assert template.own_statistics_ratio == pytest.approx(alone.statistics_ratio)
    assert all(c.p_value > 0.01 for c in template.closure.values())  # the efficiency describes the category
    side = WINDOW.sideband_bins(EDGES)
    assert template.values[side].sum() == pytest.approx(data[side].sum(), rel=1e-3)
    truth = template.data_events * (template.photon_fraction * expected["photon"]
                                    + (1 - template.photon_fraction) * expected["reducible"])
    grouped = [a.reshape(-1, 10).sum(1) for a in (template.values, alone.values, truth)]
    assert np.abs(grouped[0] - grouped[2]).sum() < 0.7 * np.abs(grouped[1] - grouped[2]).sum()  # closer to the truth


def test_a_b_tagged_category_takes_its_efficiency_from_the_control_selection_without_the_b_tag():
    """A category with a b-tag requirement that yy+jets passes by mistag only (1%) and tt+yy mostly (70%): the
    category holds a few dozen yy+jets events, the control selection (the score cut without the b-tag) a hundred
    times more.  The control's efficiency in m_yy times each sample's share of it carries the statistics and keeps
    the two samples' mixture."""
    from ttH_adv.stats.templates import CONTROL_EFFICIENCY, EFFICIENCY, Components, build_template

    rng = np.random.default_rng(27)
    score = 0.05 * np.exp(-(CENTRES - 105) / 60)  # the score cut's smooth efficiency
    slopes, events, weights, btag = {"yyjets": -0.55, "ttyy": -0.25}, {"yyjets": 600_000, "ttyy": 30_000}, \
        {"yyjets": 1.0, "ttyy": 0.05}, {"yyjets": 0.01, "ttyy": 0.7}
    parts, truth = {"inclusive": {}, "control": {}, "own": {}}, 0.0
    for name, slope in slopes.items():
        shape = _exponential(1.0, slope=slope)
        everything = rng.poisson(events[name] * shape)
        control = rng.binomial(everything, score)
        own = rng.binomial(control, btag[name])
        w = weights[name]
        for key, counts in (("inclusive", everything), ("control", control), ("own", own)):
            parts[key][name] = (w * counts.astype(float), w * w * counts.astype(float))
        truth = truth + w * events[name] * btag[name] * shape * score

    def components(samples):
        values = sum(v for v, _ in samples.values())
        return Components(values, sum(var for _, var in samples.values()), np.zeros_like(values), samples)

    own, control, inclusive = (components(parts[k]) for k in ("own", "control", "inclusive"))
    data = rng.poisson(truth * 2_000 / truth.sum()).astype(float)
    config = load_config().fits
    direct = build_template(data, own, EDGES, WINDOW, config, inclusive)
    via_control = build_template(data, own, EDGES, WINDOW, config, inclusive, control=control)
    assert direct.method == EFFICIENCY and via_control.method == CONTROL_EFFICIENCY
    assert via_control.statistics_ratio > 3 * direct.statistics_ratio
    assert all(c.p_value > 0.01 for c in via_control.closure.values())
    unit = [t.values / t.values.sum() for t in (via_control, direct)] + [truth / truth.sum()]
    grouped = [u.reshape(-1, 10).sum(1) for u in unit]
    assert np.abs(grouped[0] - grouped[2]).sum() < 0.02  # the mixture of the two shapes, each in its share


def test_a_sculpted_category_keeps_its_spurious_signal_through_the_efficiency_template():
    """A classifier that sculpts the continuum under the signal (its score efficiency peaks at 125 GeV, 4 GeV
    wide): in a category whose own events are 1-2x the data's statistics, the template made with the efficiency
    in m_yy gives the exponential's spurious signal within 20% of the one the exact template gives."""
    from ttH_adv.stats.templates import EFFICIENCY, build_template

    rng = np.random.default_rng(23)
    sculpted = 0.01 * (1 + 2.0 * np.exp(-0.5 * ((CENTRES - 125) / 4) ** 2))
    signal = _signal_model()
    config = load_config().fits
    found, truths = [], []
    for _ in range(3):
        own, inclusive, expected, share = _category_counts(rng, 2_000_000, sculpted)
        exact = share * expected["photon"] + (1 - share) * expected["reducible"]
        data = rng.poisson(own.ntni.sum() * 2.0 * exact).astype(float)
        template = build_template(data, own, EDGES, WINDOW, config, inclusive)
        assert template.method == EFFICIENCY and template.own_statistics_ratio < 5
        truth = template.data_events * (template.photon_fraction * expected["photon"]
                                        + (1 - template.photon_fraction) * expected["reducible"])
        tested = fits.spurious_signal(template.values, template.fit_variance, EDGES, "exponential", signal, 30.0,
                                      10.0, SCAN, replicas=template.replicas)
        exact_test = fits.spurious_signal(truth, truth / 1e4, EDGES, "exponential", signal, 30.0, 10.0, SCAN)
        found.append(tested.max_abs_signal)
        truths.append(exact_test.max_abs_signal)
        assert tested.delta_mc < 0.1 * exact_test.max_abs_signal  # the template resolves it
    assert np.mean(truths) > 20  # the sculpting is a spurious signal of many events
    assert np.mean(found) == pytest.approx(np.mean(truths), rel=0.2)


def test_a_category_of_a_few_dozen_events_gets_a_wide_kernel_and_fifty_times_the_data_statistics():
    """A category of ~60 events with a smooth efficiency (a decorrelated classifier's): its events cannot tell a
    narrow structure from their own fluctuations, the leave-one-out likelihood takes a wide kernel, and the
    template carries 50x the data's statistics (a fixed 2 GeV kernel gave 12-25x in such categories)."""
    from ttH_adv.stats.templates import build_template

    rng = np.random.default_rng(25)
    smooth = 4e-4 * (1 + (CENTRES - 105) / 55)
    config = load_config().fits
    own, inclusive, expected, share = _category_counts(rng, 200_000, smooth)
    exact = share * expected["photon"] + (1 - share) * expected["reducible"]
    data = rng.poisson(60 * exact).astype(float)
    template = build_template(data, own, EDGES, WINDOW, config, inclusive)
    assert 20 < own.ntni.sum() < 60 and template.own_statistics_ratio < 5
    assert min(template.bandwidths.values()) >= 16.0
    assert template.statistics_ratio > 50
    assert template.closure_p_value() > 0.01


def test_a_sloped_efficiency_on_a_falling_spectrum_gets_a_wide_kernel():
    """The leave-one-out likelihood judges the local-linear estimate the template uses: a smooth efficiency that
    rises 15x over the range, on a steeply falling base (the NTNI data's), keeps a wide kernel in binomial toys of
    ~170 passed events.  Judged by the plain kernel ratio, which a falling spectrum pulls toward low mass, the
    same toys ask for 4-8 GeV."""
    from ttH_adv.stats.templates import cross_validated_efficiency

    rng = np.random.default_rng(26)
    config = load_config().fits
    spectrum = np.exp(-0.026 * (CENTRES - 105))
    efficiency = 0.004 * np.exp(0.05 * (CENTRES - 130))
    chosen = []
    for _ in range(10):
        total = rng.poisson(40_000 * spectrum / spectrum.sum()).astype(float)
        passed = rng.binomial(total.astype(int), efficiency).astype(float)
        ones = np.ones_like(total)
        chosen.append(cross_validated_efficiency(passed, total, CENTRES, config.efficiency_bandwidths,
                                                 config.efficiency_tolerance, ones, ones).kernel.width)
    assert sum(width >= 16.0 for width in chosen) >= 7, chosen


def test_a_flat_efficiency_where_the_events_see_no_slope_keeps_the_inclusive_shape():
    """A decorrelated classifier's category: an efficiency flat in m_yy, ~50 NTNI events.  Its events cannot tell a
    slope from their fluctuations, the flat efficiency (the infinite width) is chosen, and the category's shape is
    the inclusive one itself, with the inclusive selection's statistics and one parameter off the closure's
    degrees of freedom."""
    from ttH_adv.stats.templates import build_template

    rng = np.random.default_rng(27)
    config = load_config().fits
    flat = np.full(len(CENTRES), 4e-4)
    own, inclusive, expected, share = _category_counts(rng, 400_000, flat)
    data = rng.poisson(60 * (share * expected["photon"] + (1 - share) * expected["reducible"])).astype(float)
    template = build_template(data, own, EDGES, WINDOW, config, inclusive)
    assert 30 < own.ntni.sum() < 80
    assert template.bandwidths == {"continuum": np.inf, "ntni": np.inf}
    groups = len(np.unique(fits.gof_groups(EDGES, WINDOW.gof_bin_width)))
    assert template.closure["ntni"].ndf == pytest.approx(groups - 1)
    side = WINDOW.sideband_bins(EDGES)
    photon, reducible = (inclusive.mc / inclusive.mc.sum(), inclusive.ntni / inclusive.ntni.sum())
    exact = template.data_events * (template.photon_fraction * photon + (1 - template.photon_fraction) * reducible)
    assert np.allclose(template.values[~side], exact[~side], rtol=1e-9)
    assert template.statistics_ratio > 1000


def test_each_continuum_sample_has_its_own_efficiency():
    """A continuum of two MC samples that the category selects differently: a light-weight one of many events
    (tt+yy-like, 20% pass) and a heavy one that passes by mistag (0.02%, a few dozen events of weight 1000x).
    Each gets its efficiency and its kernel: the heavy sample's few events a wide one.  Pooled into one, the bins
    that hold a heavy event look like structure, the likelihood asks for the narrowest kernel, and the template
    carries a tenth of the statistics and a shape further from the truth."""
    from ttH_adv.stats.templates import Components, build_template

    rng = np.random.default_rng(26)
    config = load_config().fits
    light_shape, heavy_shape = _exponential(1.0, slope=-0.4), _exponential(1.0, slope=-0.55)
    light_all, heavy_all = rng.poisson(60_000 * light_shape).astype(float), rng.poisson(200_000 * heavy_shape) * 1.0
    light_cat = rng.binomial(light_all.astype(int), 0.2).astype(float)
    heavy_cat = rng.binomial(heavy_all.astype(int), 2e-4).astype(float)
    w_light, w_heavy = 1e-3, 1.0

    def components(light, heavy, split):
        samples = {"light": (w_light * light, w_light**2 * light), "heavy": (w_heavy * heavy, w_heavy**2 * heavy)}
        return Components(w_light * light + w_heavy * heavy, w_light**2 * light + w_heavy**2 * heavy,
                          np.zeros_like(light), samples if split else {})

    truth = w_light * 0.2 * 60_000 * light_shape + w_heavy * 2e-4 * 200_000 * heavy_shape
    data = rng.poisson(200 * truth / truth.sum()).astype(float)
    split, pooled = (build_template(data, components(light_cat, heavy_cat, s), EDGES, WINDOW, config,
                                    components(light_all, heavy_all, s)) for s in (True, False))
    assert set(split.bandwidths) == {"light", "heavy"} and split.bandwidths["heavy"] >= 16.0
    assert all(c.p_value > 0.01 for c in split.closure.values())
    assert split.statistics_ratio > 10 * pooled.statistics_ratio

    def distance(template):
        return np.abs((template.values / template.values.sum() - truth / truth.sum()).reshape(-1, 10).sum(1)).sum()

    assert distance(split) < 0.6 * distance(pooled)


def test_the_efficiency_reweighting_closes_a_classifier_cannot_tell_it_from_the_category():
    """Events of an inclusive selection, a category cut from them with a sculpted efficiency in m_yy: the
    efficiency measured on one half reweights the other half's inclusive events into the category so that a
    classifier trained to tell them apart has an AUC within 0.5 +/- 0.02 on held-out events."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from ttH_adv.stats.templates import cross_validated_efficiency

    rng = np.random.default_rng(24)
    config = load_config().fits
    n = 400_000
    mass = 105 + rng.exponential(40, 4 * n)
    mass = mass[mass < 160][:n]
    true_efficiency = 0.1 * (1 + 2.0 * np.exp(-0.5 * ((mass - 125) / 4) ** 2))
    in_category = rng.random(n) < true_efficiency
    half = np.arange(n) % 2 == 0
    index = np.clip(np.digitize(mass, EDGES) - 1, 0, len(EDGES) - 2)
    passed = np.bincount(index[half & in_category], minlength=len(CENTRES)).astype(float)
    total = np.bincount(index[half], minlength=len(CENTRES)).astype(float)
    ones = np.ones_like(CENTRES)
    chosen = cross_validated_efficiency(passed, total, CENTRES, config.efficiency_bandwidths,
                                        config.efficiency_tolerance, ones, ones)
    assert chosen.kernel.width <= 4.0  # 100k events see the 4 GeV bump and ask for a kernel that keeps it
    measured = chosen.values
    test = ~half
    category = mass[test & in_category]
    reweighted, weights = mass[test], measured[index[test]]
    x = np.concatenate([category, reweighted])[:, None]
    y = np.concatenate([np.ones(len(category)), np.zeros(len(reweighted))])
    w = np.concatenate([np.full(len(category), 1.0 / len(category)), weights / weights.sum()])
    train = rng.random(len(y)) < 0.5
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(x[train], y[train], sample_weight=w[train])
    auc = roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1], sample_weight=w[~train])
    assert auc == pytest.approx(0.5, abs=0.02)
    # a flat efficiency in its place leaves the sculpting for the classifier to find
    flat = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(
        x[train], y[train], sample_weight=np.concatenate([w[: len(category)],
                                                          np.full(len(reweighted), 1.0 / len(reweighted))])[train])
    w_flat = np.concatenate([w[: len(category)], np.full(len(reweighted), 1.0 / len(reweighted))])
    assert roc_auc_score(y[~train], flat.predict_proba(x[~train])[:, 1], sample_weight=w_flat[~train]) > 0.55


def test_bias_toys_of_the_right_function_are_unbiased():
    template = _exponential(2000)
    fitted = fits.bias_toys(template, EDGES, "exponential", _signal_shape(), toys=40, seed=3)
    assert abs(fitted.mean()) < 3 * fitted.std() / np.sqrt(40)
    curved = 2000 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 1.2], 105, 160), EDGES)
    biased = fits.bias_toys(curved, EDGES, "exponential", _signal_shape(), toys=40, seed=3)
    assert abs(biased.mean()) > 5 * biased.std() / np.sqrt(40)


@pytest.mark.parametrize("family", ["exponential", "powerlaw", "exppoly2"])
def test_fisher_scoring_finds_migrad_s_minimum_of_a_toy(family):
    """The bias test's toy fits: Fisher scoring from the template's fit lands where MIGRAD does (to a small fraction
    of the signal's error, at no higher -log L), and the mean over toys is the one MIGRAD gives."""
    rng = np.random.default_rng(31)
    template = 300 * fits.normalised_shape(lambda m: fits.FAMILIES["exppoly2"].density(m, [-1.5, 0.6], 105, 160),
                                           EDGES)
    signal = _signal_shape()
    start = np.array(fits._poisson_signal_fit(template, EDGES, family, signal, with_error=False).values)
    fitted, errors = [], []
    for _ in range(20):
        counts = rng.poisson(template).astype(float)
        found = fits.fisher_scoring_fit(counts, EDGES, family, signal, start)
        migrad = fits._poisson_signal_fit(counts, EDGES, family, signal, start=tuple(start))
        assert found is not None
        assert abs(found[0] - migrad.values["s"]) < 0.03 * migrad.errors["s"]
        expected = found[0] * signal + found[1] * fits.family_shape(family, found[2:], EDGES)
        assert fits._poisson_nll(counts, expected) <= migrad.fval + 1e-6
        fitted.append(migrad.values["s"])
        errors.append(migrad.errors["s"])
    toys = fits.bias_toys(template, EDGES, family, signal, toys=20, seed=31)  # the same toys: the same seed
    assert np.all(np.abs(toys - np.array(fitted)) < 0.03 * np.array(errors))


def test_the_likelihoods_starting_matrix_is_its_hessian_on_asimov_data():
    """MIGRAD's starting matrix (``Likelihood.fisher_diagonal``) is the expected Hessian's diagonal: on Asimov data
    at the parameters that made them it equals the numerical second derivatives of -log L, constraints included."""
    from ttH_adv.stats.likelihood import (
        HISTOSYS,
        NORMSYS,
        CategoryModel,
        Likelihood,
        Modifier,
        asimov,
    )

    signal, background = 12.0 * _signal_shape(), _exponential(800.0)
    resonant = 3.0 * _signal_shape()
    modifiers = (Modifier("lumi", NORMSYS, "signal", 1.02, 0.98), Modifier("hf", NORMSYS, "resonant", 2.0, 0.5),
                 Modifier("scale", HISTOSYS, "signal", np.roll(signal, 1), np.roll(signal, -1)))
    start = fits.BackgroundFit("exponential", [-1.2], 800.0, 0, 0, 0, 1, True)
    model = CategoryModel("had_1", asimov(background, signal, resonant), signal, resonant, "exponential", start,
                          modelling=2.0, modifiers=modifiers)
    likelihood = Likelihood([model], EDGES)
    x = np.array(likelihood.start, dtype=float)  # mu 1, theta 0, the generating norm and slope, t 0
    numerical = []
    for i in range(len(x)):
        h = 1e-4 * max(abs(x[i]), 1.0)
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numerical.append((likelihood.nll(*up) - 2 * likelihood.nll(*x) + likelihood.nll(*down)) / h**2)
    assert likelihood.fisher_diagonal(*x) == pytest.approx(numerical, rel=2e-3)


def test_a_single_higgs_control_category_constrains_the_resonant_normalisation():
    """The heavy-flavour ggH/VH term (x2 or x0.5 at one sigma) is barely constrained by a signal category holding 3
    resonant events on 200 of continuum; a control category of 40 resonant events on 400 measures it: its post-fit
    error falls, and so does mu's."""
    from ttH_adv.stats.likelihood import NORMSYS, CategoryModel, Likelihood, Modifier, asimov

    signal = _signal_shape()

    def category(name, n_signal, n_resonant, n_background):
        background = _exponential(n_background)
        start = fits.BackgroundFit("exponential", [-1.2], n_background, 0, 0, 0, 1, True)
        resonant = n_resonant * signal
        hf = Modifier("heavy_flavour", NORMSYS, "resonant", 2.0, 0.5)
        return CategoryModel(name, asimov(background, n_signal * signal, resonant), n_signal * signal, resonant,
                             "exponential", start, modifiers=(hf,))

    had_1, had_h = category("had_1", 10.0, 3.0, 200.0), category("had_H", 0.5, 40.0, 400.0)
    alone = Likelihood([had_1], EDGES).fit(with_errors=True)
    both = Likelihood([had_1, had_h], EDGES).fit(with_errors=True)
    assert alone.errors["heavy_flavour"] > 0.9  # the prior alone
    assert both.errors["heavy_flavour"] < 0.5 * alone.errors["heavy_flavour"]
    assert both.errors["mu"] < alone.errors["mu"]


def test_asimov_significance_matches_counting_formula_for_a_clean_peak():
    assert fits.asimov_significance(10.0, 100.0) == pytest.approx(0.9838, abs=1e-3)
    assert fits.asimov_significance(0.0, 100.0) == 0.0


@pytest.fixture(scope="module")
def fitted_with_systematics(small_manifest, config):
    """The small dataset run with every systematic and fitted: (output, fits, category models, workspace)."""
    from ttH_adv.stats.fit_analysis import analyse
    from ttH_adv.stats.workspace import build_workspace

    from conftest import run

    output = run(small_manifest, config, systematics="all")
    result, models = analyse(output, config, impacts=False)
    return output, result, models, build_workspace(models, EDGES)


def test_pyhf_workspace_is_the_own_model_and_recovers_an_injected_signal(fitted_with_systematics, config):
    pyhf = pytest.importorskip("pyhf")
    import dataclasses

    from ttH_adv.stats.fit_analysis import datasets_by_role
    from ttH_adv.stats.workspace import INTERPOLATION

    output, result, models, spec = fitted_with_systematics
    assert datasets_by_role(output) == {"data": ["data"], "signal": ["ttH"], "resonant": ["VBF", "WH", "ZH", "ggH", "tH"],
                                        "continuum": ["ttyy", "yyjets"], "reducible": ["yjets"]}  # via the manifest
    weights = set(config.systematics.weight) | set(config.systematics.object)
    terms = {n for n, t in config.uncertainties.normalisation.items() if "signal" in t.roles}
    injected, models_injected = [], []
    for channel, model in zip(spec["channels"], models, strict=True):
        samples = {s["name"]: s for s in channel["samples"]}
        assert np.allclose(samples["signal"]["data"], model.signal)
        assert np.allclose(samples["background"]["data"], model.start.expected(EDGES))
        assert model.signal.sum() == pytest.approx(  # the signal model's shape at the ttH MC's yield
            output["histograms"]["mgg"][{"dataset": "ttH", "region": "TI", "category": channel["name"],
                                         "systematic": "nominal"}].sum().value)
        types = {m["name"]: m for m in samples["signal"]["modifiers"]}
        assert {n for n, m in types.items() if m["type"] == "normsys"} >= terms | (weights & set(types))
        assert {"photon_id_sf", "jet_energy_scale", "btag_sf"} <= set(types)  # from the histograms' variations
        assert types["photon_id_sf"]["data"]["hi"] == pytest.approx(1.02, rel=1e-6)  # a flat 2% weight variation
        assert types["luminosity"]["data"] == {"hi": 1.0083, "lo": 1 - 0.0083}
        assert {n for n, m in types.items() if m["type"] == "histosys"} == {"signal_mass_scale", "signal_mass_resolution"}
        observed = model.start.expected(EDGES) + 2.0 * model.signal + model.resonant  # mu = 2 injected
        injected.append({"name": channel["name"], "data": observed.tolist()})
        models_injected.append(dataclasses.replace(model, observed=observed))
    spec = {**spec, "observations": injected}
    pyhf.set_backend("numpy", "minuit")
    try:
        workspace = pyhf.Workspace(spec)
        model = workspace.model(modifier_settings=INTERPOLATION)
        fitted = pyhf.infer.mle.fit(workspace.data(model), model, return_uncertainties=True)
    finally:
        pyhf.set_backend("numpy", "scipy")
    mu_pyhf, error_pyhf = fitted[model.config.poi_index]
    mu_own, error_own, _ = likelihood.fit_signal_strength(models_injected, EDGES)
    # the injected mu to a few hundredths of its error (the modelling terms leave a shallow direction)
    assert abs(mu_pyhf - 2.0) < 0.03 * error_pyhf and abs(mu_own - 2.0) < 0.03 * error_own
    assert error_pyhf == pytest.approx(error_own, rel=0.1)  # the background shape: exact here, linearised there


def test_pyhf_agrees_with_the_own_fit_with_every_uncertainty(fitted_with_systematics):
    """The same model on both sides: pyhf's Z and expected limit within 5% of the own fit's, with every
    uncertainty and statistical only, and at least 8 modifiers per channel."""
    pytest.importorskip("pyhf")
    from ttH_adv.stats.workspace import compare_with_pyhf

    _, result, _, spec = fitted_with_systematics
    terms = [s for c in spec["channels"] for s in c["samples"] if s["name"] == "spurious_signal"]
    assert len(terms) == len(spec["channels"]) > 0  # every fitted category carries its modelling term
    comparison = compare_with_pyhf(result, spec)
    assert min(comparison.modifiers_per_channel.values()) >= 8
    checks = {"all": (comparison.all_uncertainties, result.combined.all_uncertainties),
              "statistical": (comparison.statistical_only, result.combined.statistical_only)}
    for variant, (check, figures) in checks.items():
        own = check.own
        assert (own.significance, own.upper_limit) == (figures.significance, figures.upper_limit)
        assert own.significance > 0 and own.upper_limit > 0
        for key in ("significance", "upper_limit"):
            assert abs(getattr(check.relative_difference, key)) < 0.05, (variant, key, comparison)
    for side in ("own", "pyhf"):  # the uncertainties cost sensitivity on both sides
        assert getattr(comparison.all_uncertainties, side).upper_limit > \
            getattr(comparison.statistical_only, side).upper_limit


def _channel_events(rng, sculpted: int = 0):
    """A channel's scored events: signal at high scores, a falling continuum (MC, NTNI and blinded TI data) at low
    ones, and ``sculpted`` continuum events a classifier pushed to high scores near 125 GeV."""
    from ttH_adv.stats.categorize import ChannelEvents, Events

    def continuum(n, weight):
        mass = 105 + rng.exponential(30, n)
        mass = np.where(mass < 160, mass, 150)
        score = rng.beta(1, 3, n)
        if sculpted:
            mass = np.concatenate([mass, rng.normal(125, 3, sculpted)])
            score = np.concatenate([score, rng.beta(8, 1, sculpted)])
        return Events(score, np.full(len(score), weight), mass)

    data = continuum(20_000, 1.0)
    blinded = ~WINDOW.in_window(data.mass)
    signal = Events(rng.beta(5, 1, 5000), np.full(5000, 0.01), rng.normal(125, 1.7, 5000))
    return ChannelEvents(signal, Events.empty(), continuum(40_000, 0.5), continuum(20_000, 1.0),
                         Events(data.score[blinded], data.weight[blinded], data.mass[blinded]))


def test_categorize_finds_the_pure_region_and_respects_the_sideband_minimum():
    from ttH_adv.errors import TthAdvError

    events = _channel_events(np.random.default_rng(14))
    best = optimise_channel(events, 2, 10, WINDOW)
    assert len(best.boundaries) == 2 and best.boundaries[0] > best.boundaries[1] > 0.4
    assert min(best.sideband_events) >= 10 and max(best.modelling) < 1.0  # nothing sculpted
    strict = optimise_channel(events, 2, 1000, WINDOW)
    assert min(strict.sideband_events) >= 1000 and strict.z <= best.z
    with pytest.raises(TthAdvError, match="not even 1 category with >= 50000 template events"):
        optimise_channel(events, 2, 50_000, WINDOW)
    # more categories than the sidebands support: the most they can, and how many were asked for
    fewer = optimise_channel(events, 4, 1000, WINDOW)
    assert fewer.requested == 4 and 1 <= len(fewer.boundaries) <= 3
    assert min(fewer.sideband_events) >= 1000 and fewer.boundaries == sorted(fewer.boundaries, reverse=True)
    # the template sets the background, scaled to the TI data's sidebands: 20k data, 40k MC of weight 0.5
    in_sidebands = ~WINDOW.in_window(events.data.mass) & (events.data.score >= best.boundaries[-1])
    assert sum(best.sideband_events) < sum(in_sidebands) * 1.2


def test_categorize_charges_a_sculpted_category_its_modelling_uncertainty():
    """Continuum events pushed to high scores under the signal are a spurious signal the figure of merit sees: the
    category that holds them carries a modelling term and the boundaries leave them to a category of their own."""
    from ttH_adv.stats.categorize import significance_with_uncertainty

    rng = np.random.default_rng(16)
    best = optimise_channel(_channel_events(rng, sculpted=600), 3, 10, WINDOW)
    assert max(best.modelling) > 10  # the sculpted peak, seen in the template's window
    assert significance_with_uncertainty(5.0, 20.0, 5.0) < significance_with_uncertainty(5.0, 20.0, 0.0)
    assert significance_with_uncertainty(5.0, 20.0, 0.0) == pytest.approx(fits.asimov_significance(5.0, 20.0))


def _templated_channel_events(rng, mc_events: int, mc_weight: float):
    """A channel (``_channel_events``'s kinds) with its template events by sample and its inclusive selection (the
    channel at every score), for the template-statistics requirement: continuum MC of ``mc_events`` events."""
    from ttH_adv.stats.categorize import ChannelEvents, Events, SampleEvents, TemplateEvents
    from ttH_adv.stats.templates import Components

    def continuum(n, weight):
        mass = 105 + rng.exponential(30, n)
        return Events(rng.beta(1, 3, n), np.full(n, weight), np.where(mass < 160, mass, 150))

    data, mc, ntni = continuum(20_000, 1.0), continuum(mc_events, mc_weight), continuum(20_000, 1.0)
    blinded = ~WINDOW.in_window(data.mass)
    signal = Events(rng.beta(5, 1, 5000), np.full(5000, 0.01), rng.normal(125, 1.7, 5000))

    def h(e, w):
        return np.histogram(e.mass, WINDOW.edges(), weights=w)[0].astype(float)

    inclusive = Components(h(mc, mc.weight), h(mc, mc.weight**2), h(ntni, ntni.weight),
                           {"yy": (h(mc, mc.weight), h(mc, mc.weight**2))})
    return ChannelEvents(signal, Events.empty(), mc, ntni, Events(data.score[blinded], data.weight[blinded],
                                                                  data.mass[blinded]),
                         TemplateEvents(SampleEvents({"yy": mc}, ntni), None, inclusive))


def _category_template(events, high: float, low: float, config):
    """The fit's template of the category low <= score < high, from histograms of its events."""
    from ttH_adv.stats.templates import Components, build_template

    def h(e, w=None):
        keep = (e.score >= low) & (e.score < high)
        return np.histogram(e.mass[keep], WINDOW.edges(), weights=None if w is None else w[keep])[0].astype(float)

    mc = events.templates.channel.continuum["yy"]
    own = Components(h(mc, mc.weight), h(mc, mc.weight**2), h(events.ntni), {"yy": (h(mc, mc.weight),
                                                                                     h(mc, mc.weight**2))})
    data = np.where(WINDOW.sideband_bins(WINDOW.edges()), h(events.data), 0.0)
    return build_template(data, own, WINDOW.edges(), WINDOW, config, events.templates.inclusive)


def test_categorize_gives_every_category_a_template_of_the_statistics_asked_for():
    """With the fit configuration, the boundaries leave out a category whose template the fit would find short of
    ``fits.template_min_statistics``; the ratio each category records is the one the fit's template has."""
    from dataclasses import replace

    events = _templated_channel_events(np.random.default_rng(14), 10_000, 2.0)
    config = replace(load_config().fits, template_min_statistics=200.0)
    free = optimise_channel(events, 3, 10, WINDOW)
    checked = optimise_channel(events, 3, 10, WINDOW, fits=config)
    assert free.template_statistics == [] and len(checked.boundaries) == 3

    def ratios(found):
        highs = [np.inf, *found.boundaries[:-1]]
        return [_category_template(events, high, low, config).statistics_ratio
                for high, low in zip(highs, found.boundaries, strict=True)]

    assert min(ratios(free)) < 200  # the best boundaries without the requirement: a template short of it
    assert checked.template_statistics == pytest.approx(ratios(checked), rel=1e-9)
    assert min(checked.template_statistics) >= 200 and checked.z <= free.z
    assert checked.boundaries != free.boundaries and checked.template_statistics_met
    # a simulation too small for any category: the boundaries the sidebands alone allow, and a flag that says so
    unreachable = optimise_channel(events, 3, 10, WINDOW, fits=replace(config, template_min_statistics=1e9))
    assert unreachable.boundaries == free.boundaries and not unreachable.template_statistics_met


def test_categorize_reads_the_fits_template_ingredients_from_the_dump(small_manifest, config, tmp_path):
    """What the template-statistics requirement builds templates from, read from the dump, is what the fit reads
    from the processor's histograms: the inclusive selection's ingredients, a channel's and its control
    selection's."""
    from ttH_adv.stats.categorize import _template_events as template_events
    from ttH_adv.stats.categorize import inclusive_components, scored_events
    from ttH_adv.stats.fit_analysis import category_inputs

    from conftest import run

    output = run(small_manifest, config, dump_dir=str(tmp_path / "dump"))
    frame = scored_events(tmp_path / "dump", []).assign(score=0.5)  # no model: every event in the one category
    edges = config.mass.edges()
    inclusive, fit = inclusive_components(frame, edges), category_inputs(output, "had")
    assert set(inclusive.mc_samples) == set(fit.inclusive.mc_samples) and inclusive.regions is not None
    for name, (values, variance) in fit.inclusive.mc_samples.items():
        assert inclusive.mc_samples[name] == (pytest.approx(values), pytest.approx(variance))
    assert inclusive.ntni == pytest.approx(fit.inclusive.ntni)
    for spectrum in ("prompt_ti", "prompt_ntni", "fake_ti", "fake_ntni"):
        assert getattr(inclusive.regions, spectrum) == pytest.approx(getattr(fit.inclusive.regions, spectrum))
    events = template_events(frame, "had", inclusive)

    def histogram(e, weights):
        return np.histogram(e.mass, edges, weights=weights)[0]

    for name, (values, variance) in fit.template.mc_samples.items():
        e = events.channel.continuum[name]
        assert histogram(e, e.weight) == pytest.approx(values) and histogram(e, e.weight**2) == pytest.approx(variance)
    assert histogram(events.channel.ntni, None) == pytest.approx(fit.template.ntni)
    assert events.rest is not None and fit.control is not None
    rest_mc = sum(histogram(e, e.weight) for e in events.rest.continuum.values())
    assert rest_mc == pytest.approx(fit.control.mc - fit.template.mc) and rest_mc.sum() > 0
    assert histogram(events.rest.ntni, None) == pytest.approx(fit.control.ntni - fit.template.ntni)


def _bump(size: float) -> np.ndarray:
    """A unit exponential continuum that a classifier sculpted into a bump of relative ``size`` under the signal."""
    return _exponential(1.0) * (1 + size * np.exp(-0.5 * ((CENTRES - 126) / 4) ** 2))


def _toy_output(tmp_path, continuum: np.ndarray, name: str = "out.zip", resonant: float = 0.0):
    """Histograms of one category: TI data sidebands, NTNI data and continuum MC of the unit shape ``continuum``
    (exact expectations, 20k data events, MC of 50x their statistics), 30 signal events and ``resonant``
    single-Higgs events."""
    import hist

    from ttH_adv.output import save_output

    sculpted = continuum
    h = hist.Hist(hist.axis.StrCategory(["data", "ttH", "yyjets", "ggH"], name="dataset"),
                  hist.axis.StrCategory(["TI", "NTNI"], name="region"), hist.axis.StrCategory(["had_1"], name="category"),
                  hist.axis.StrCategory(["nominal"], name="systematic"),
                  hist.axis.Regular(110, 105, 160, name="mgg"), storage=hist.storage.Weight())
    view = h.view()
    blinded = np.where(WINDOW.sideband_bins(EDGES), 1.0, 0.0)
    for (d, r), (values, variances) in {(0, 0): (20_000 * sculpted * blinded, 20_000 * sculpted * blinded),
                                        (0, 1): (200_000 * sculpted, 200_000 * sculpted),
                                        (1, 0): (30 * _signal_shape(), 0.01 * _signal_shape()),
                                        (2, 0): (20_000 * sculpted, 20_000 * sculpted / 50),
                                        (3, 0): (resonant * _signal_shape(), 0.01 * _signal_shape())}.items():
        view["value"][d, r, 0, 0], view["variance"][d, r, 0, 0] = values, variances
    roles = {"data": "data", "ttH": "signal", "yyjets": "continuum", "ggH": "resonant"}
    return save_output({"histograms": {"mgg": h}, "cutflow": {}, "metadata": {"roles": roles}}, tmp_path / name)


def _sculpted_output(tmp_path):
    """Histograms whose continuum a classifier sculpted into a bump under the signal (high statistics)."""
    return _toy_output(tmp_path, _bump(0.08))


def test_modelling_uncertainty_enters_the_likelihood_and_costs_a_sculpted_category_its_significance(tmp_path):
    """The spurious-signal nuisance: a sculpted template whose spurious signal is 5x the signal keeps less than
    half its expected significance; a smooth one keeps at least 95%."""
    import dataclasses

    from ttH_adv.output import load_output
    from ttH_adv.stats.fit_analysis import run_fits

    # criteria loose enough that the exponential is chosen for the sculpted template too
    loose = dataclasses.replace(load_config(), fits=dataclasses.replace(
        load_config().fits, spurious_fraction_of_signal=10.0, min_gof_probability=0.0, f_test_probability=0.0))
    kept = {}
    for label, size in (("sculpted", 0.08), ("smooth", 0.0)):
        result = run_fits(load_output(_toy_output(tmp_path, _bump(size), f"{label}.zip")), loose, impacts=False)
        record = result.categories[0]
        assert record.chosen_family == "exponential" and not record.fallback
        width = record.modelling_uncertainty
        spurious = record.spurious("exponential")
        assert width.events == pytest.approx(max(spurious.max_abs_signal, abs(record.bias.mean_signal)))
        assert width.source == ("spurious" if spurious.max_abs_signal >= abs(record.bias.mean_signal) else "bias")
        combined = result.combined
        kept[label] = combined.statistical_and_modelling.significance / combined.statistical_only.significance
        assert combined.all_uncertainties.significance == pytest.approx(
            record.expected.all_uncertainties.significance, rel=1e-3)
        if label == "sculpted":
            assert width.events > 5 * record.expected_signal  # the bias is five times the signal
            assert combined.all_uncertainties.upper_limit > 2 * combined.statistical_only.upper_limit
        else:
            assert width.events < 0.3 * record.expected_signal
    assert kept["sculpted"] < 0.5 and kept["smooth"] >= 0.95, kept


def test_a_category_without_an_acceptable_function_is_kept_with_the_fallback_and_strict_fails(tmp_path):
    """ATLAS practice: no family passes the spurious-signal test, so the category keeps the family of smallest
    spurious signal, that as its width, flagged; the headline combines it, the figure without it is apart."""
    from ttH_adv.app.cli import main
    from ttH_adv.stats.fit_analysis import ALL, FALLBACK, PASSING

    path = _sculpted_output(tmp_path)
    assert main(["--no-progress", "fit", "--histograms", str(path), "--out", str(tmp_path / "fits")]) == 0
    result = json.loads((tmp_path / "fits" / "fits.json").read_text())
    record = result["categories"][0]
    assert not any(s["passed"] for s in record["spurious_signal"])
    smallest = min(record["spurious_signal"], key=lambda s: s["max_abs_signal"])
    assert record["fallback"] and record["status"] == FALLBACK and record["chosen_family"] == smallest["family"]
    assert record["modelling_uncertainty"]["spurious_signal"] == pytest.approx(smallest["max_abs_signal"])
    assert result["fallback"] == ["had_1"] and result["combined"]["categories"] == ["had_1"]
    assert result["combined"][ALL]["significance"] > 0 and result["combined"][PASSING] is None
    assert record["template"]["effective_over_data"] > 10
    assert main(["--no-progress", "fit", "--histograms", str(path), "--out", str(tmp_path / "strict"),
                 "--strict"]) == 1


def test_widening_a_systematic_lowers_the_significance(tmp_path):
    """Every normalisation term reaches the likelihood: a wider single-Higgs cross-section uncertainty (a
    background under the peak) costs Z; a wider ttH one widens mu (Z, at mu free, does not see it)."""
    import dataclasses

    from ttH_adv.output import load_output
    from ttH_adv.stats.fit_analysis import run_fits

    output = load_output(_toy_output(tmp_path, _bump(0.0), resonant=60.0))
    config = load_config()

    def widened(name: str):
        terms = dict(config.uncertainties.normalisation)
        terms[name] = dataclasses.replace(terms[name], up=0.5, down=0.5)
        return dataclasses.replace(config, uncertainties=dataclasses.replace(config.uncertainties, normalisation=terms))

    nominal = run_fits(output, config, impacts=False)
    assert {"ttH_cross_section_scale", "single_higgs_cross_sections"} <= set(nominal.categories[0].modifiers)
    resonant = run_fits(output, widened("single_higgs_cross_sections"), impacts=False).combined
    signal = run_fits(output, widened("ttH_cross_section_scale"), impacts=False).combined
    nominal = nominal.combined
    assert resonant.all_uncertainties.significance < 0.95 * nominal.all_uncertainties.significance
    assert signal.all_uncertainties.mu_error > 1.1 * nominal.all_uncertainties.mu_error
    for changed in (resonant, signal):  # statistical only: untouched
        assert changed.statistical_only.significance == pytest.approx(nominal.statistical_only.significance,
                                                                      rel=1e-4)
