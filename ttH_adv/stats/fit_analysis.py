"""``tth-adv fit``: per-category background model, function choice, bias, signal model, significance.

Per category of the processor output (TI region, nominal), in the configured mass window:

1. signal model: double-sided Crystal Ball fitted to ttH MC; the resonant background is the
   other Higgs modes (their MC histograms, fixed);
2. sideband fits of TI data (the signal window excluded) with every family, chi2/ndf and its
   probability;
3. the background-only template (``ttH_adv.stats.templates``): continuum yy MC plus the reducible part
   from NTNI data, in the fraction the TI data sidebands measure; smoothed by a Gaussian process
   where its statistics are short of ``fits.template_min_statistics`` x the data;
4. the spurious-signal test of every family on the template, with the relaxed criterion
   zeta = max(|S_spur| - 2 Delta_MC, 0);
5. the function: among the families that pass 4 and whose sideband fit has a chi2 probability
   of at least ``fits.min_gof_probability``, the one with the fewest parameters, unless an F-test
   asks for a higher order.  A category where nothing qualifies gets no function: it is marked
   (``chosen_family`` null, ``status``) and left out of the combination, never silently fitted;
6. bias: background-only toys from the template, S+B fits with the chosen function at m_H;
7. the modelling uncertainty: the larger of the chosen function's spurious signal (max |S_spur|
   over the m_H scan) and its toys' |mean bias|, in events.  It enters the likelihood as a
   signal-shaped background term with a Gaussian-constrained normalisation of that width
   (``fits.CategoryModel.modelling``), as ATLAS H->yy analyses carry the spurious signal;
8. Asimov data (blinded: chosen sideband fit + expected signal + resonant) or the data
   (``--unblind``); S+B fits give the expected significance per category and combined, mu, and
   the expected 95% CL upper limit on mu, with the modelling term (the headline,
   ``with_modelling``) and without it (``without_modelling``, for reference).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..config import AnalysisConfig, FitConfig
from ..errors import TthAdvError
from ..inputs.samples import ROLES
from ..output import CONTROL_HISTOGRAM, MASS_HISTOGRAM
from . import fits
from .templates import Components, Template, build_template

log = logging.getLogger(__name__)

NO_FUNCTION = "no acceptable function"
# Expected figures with the background-modelling nuisance (the headline) and without it.
WITH_MODELLING, WITHOUT_MODELLING = "with_modelling", "without_modelling"


def category_slice(h, datasets, region: str, category: str, systematic: str = "nominal"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Summed m_yy bin values and variances of the given datasets (zeros for absent ones)."""
    size = h.axes["mgg"].size
    values, variances = np.zeros(size), np.zeros(size)
    for d in datasets:
        if d in h.axes["dataset"]:
            part = h[{"dataset": d, "region": region, "category": category, "systematic": systematic}]
            values += part.values()
            variances += part.variances()
    return values, variances


def chosen_background(record: dict, edges: np.ndarray) -> np.ndarray:
    """Expected background per bin from a category record's chosen sideband fit."""
    fit = record["sideband_fits"][record["chosen_family"]]
    return fits.BackgroundFit(record["chosen_family"], fit["params"], fit["norm"], 0.0, 0.0, 0, 1.0,
                              True).expected(edges)


def datasets_by_role(output: dict) -> dict[str, list[str]]:
    """The datasets of each role (data, signal, resonant, continuum), from the output's metadata."""
    roles = output.get("metadata", {}).get("roles")
    if not roles:
        raise TthAdvError("the histograms carry no sample roles (made by an older version?): rerun tth-adv run")
    return {role: sorted(name for name, r in roles.items() if r == role) for role in ROLES}


def category_inputs(output: dict, category: str) -> dict[str, np.ndarray]:
    """The histograms one category's fits need, each the sum over the datasets of one role."""
    h = output["histograms"][MASS_HISTOGRAM]
    by_role = datasets_by_role(output)
    data_ti, _ = category_slice(h, by_role["data"], "TI", category)
    signal, signal_var = category_slice(h, by_role["signal"], "TI", category)
    resonant, _ = category_slice(h, by_role["resonant"], "TI", category)
    return {"edges": h.axes["mgg"].edges, "data_ti": data_ti, "signal": signal, "signal_variance": signal_var,
            "resonant": resonant, "template": template_components(h, by_role, category),
            "control": (template_components(output["histograms"][CONTROL_HISTOGRAM], by_role, category)
                        if CONTROL_HISTOGRAM in output["histograms"] else None)}


def template_components(h, by_role: dict[str, list[str]], category: str) -> Components:
    """A category's template ingredients in one histogram: continuum yy MC (TI) and NTNI data."""
    continuum, continuum_var = category_slice(h, by_role["continuum"], "TI", category)
    return Components(continuum, continuum_var, category_slice(h, by_role["data"], "NTNI", category)[0])


def spurious_signal_tests(template: Template, edges: np.ndarray, signal: fits.SignalModel, config: AnalysisConfig
                          ) -> list[dict]:
    """The spurious-signal test of every family on the template (relaxed criterion with Delta_MC)."""
    # The signal's statistical uncertainty in data: a Poisson S+B fit to the template at the data's yield.
    _, data_error = fits.fit_s_plus_b_poisson(template.values, edges, "exponential", signal.shape(edges))
    results = []
    for family in fits.FAMILY_ORDER:
        test = fits.spurious_signal(template.values, template.fit_variance, edges, family, signal, signal.yield_,
                                    data_error, config.mass.scan_masses(), config.fits.spurious_fraction_of_signal,
                                    config.fits.spurious_fraction_of_error)
        results.append(asdict(test) | {"data_signal_error": data_error})
    return results


def choose_function(spurious: list[dict], sideband: dict[str, fits.BackgroundFit], config: FitConfig
                    ) -> tuple[str | None, dict]:
    """The family with the fewest parameters passing the spurious-signal test and the goodness of fit;
    a higher order only where the F-test against the chosen one asks for it.  None when nothing qualifies."""
    passed = {r["family"] for r in spurious if r["passed"]}
    good = [f for f in fits.FAMILY_ORDER if f in passed and sideband[f].p_value >= config.min_gof_probability]
    choice: dict = {"spurious_passed": [f for f in fits.FAMILY_ORDER if f in passed], "qualified": good,
                    "f_tests": []}
    if not good:
        return None, choice
    chosen = good[0]
    for family in good[1:]:
        if fits.FAMILIES[family].n_params <= fits.FAMILIES[chosen].n_params:
            continue
        probability = fits.f_test_probability(sideband[chosen], sideband[family])
        choice["f_tests"].append({"low": chosen, "high": family, "probability": probability})
        if probability < config.f_test_probability:
            chosen = family
    return chosen, choice


def bias_test(template: Template, edges: np.ndarray, family: str, signal: fits.SignalModel, allowance: float,
              toys: int) -> dict:
    """Mean and spread of the signal fitted to background-only toys from the template, against the allowance."""
    fitted = fits.bias_toys(template.values, edges, family, signal.shape(edges), toys)
    mean, spread = float(fitted.mean()), float(fitted.std(ddof=1)) if toys > 1 else 0.0
    return {"toys": toys, "mean_signal": mean, "spread": spread, "mean_error": spread / np.sqrt(max(toys, 1)),
            "allowance": allowance, "mean_within_allowance": abs(mean) < allowance}


def modelling_uncertainty(spurious: dict, bias: dict) -> dict:
    """The category's background-modelling uncertainty in events: the larger of the chosen function's
    spurious signal (max |S_spur| over the m_H scan) and its bias toys' |mean signal|, and which it is."""
    spurious_signal, mean_bias = float(spurious["max_abs_signal"]), abs(float(bias["mean_signal"]))
    return {"events": max(spurious_signal, mean_bias), "source": "spurious" if spurious_signal >= mean_bias else "bias",
            "spurious_signal": spurious_signal, "bias": mean_bias}


def expected_figures(models: list[fits.CategoryModel], edges: np.ndarray) -> dict[str, dict[str, float]]:
    """Expected Z, mu, its error and mu_95 with the modelling nuisance (the headline) and without it."""
    return {WITH_MODELLING: fits.expected_results(models, edges),
            WITHOUT_MODELLING: fits.expected_results(fits.without_modelling(models), edges)}


def fit_category(output: dict, category: str, config: AnalysisConfig, unblind: bool
                 ) -> tuple[dict, fits.CategoryModel | None]:
    """All fits of one category; returns its JSON record and its S+B model (None if not fitted)."""
    window = config.mass
    inputs = category_inputs(output, category)
    edges = inputs["edges"]
    side = window.sideband_bins(edges)
    record: dict = {"category": category, "data_ti_sideband": float(inputs["data_ti"][side].sum()),
                    "expected_signal": float(inputs["signal"].sum()), "resonant": float(inputs["resonant"].sum()),
                    "chosen_family": None}
    template = build_template(inputs["data_ti"], inputs["template"], edges, window, config.fits, inputs["control"])
    if record["data_ti_sideband"] < 1 or inputs["signal"].sum() <= 0 or template is None:
        record["status"] = "no sideband data, signal or template: not fitted"
        return record, None
    signal = fits.fit_signal(inputs["signal"], np.maximum(inputs["signal_variance"], 1e-12), edges, window)
    record["signal_model"] = {"params": signal.params, "chi2_ndf": signal.chi2_ndf}
    sideband = {name: fits.fit_background(inputs["data_ti"], edges, name, side, window.gof_bin_width)
                for name in fits.FAMILY_ORDER}
    record["sideband_fits"] = {name: {"params": f.params, "norm": f.norm, "chi2": f.chi2, "ndf": f.ndf,
                                      "chi2_ndf": f.chi2_ndf, "p_value": f.p_value, "converged": f.converged}
                               for name, f in sideband.items()}
    record["template"] = template.record()
    record["spurious_signal"] = spurious_signal_tests(template, edges, signal, config)
    family, record["function_choice"] = choose_function(record["spurious_signal"], sideband, config.fits)
    if family is None:
        record["status"] = NO_FUNCTION
        return record, None
    record["chosen_family"], record["status"] = family, "ok"
    spurious = next(r for r in record["spurious_signal"] if r["family"] == family)
    allowance = max(config.fits.spurious_fraction_of_signal * signal.yield_,
                    config.fits.spurious_fraction_of_error * spurious["data_signal_error"])
    record["bias"] = bias_test(template, edges, family, signal, allowance, config.fits.bias_toys)
    chosen = sideband[family]
    background = chosen.expected(edges)
    record["background_in_window"] = float(background[~side].sum())
    record["signal_in_window"] = float(inputs["signal"][~side].sum())
    record["modelling_uncertainty"] = modelling_uncertainty(spurious, record["bias"])
    observed = inputs["data_ti"] if unblind else fits.asimov(background, inputs["signal"], inputs["resonant"])
    model = fits.CategoryModel(category, observed, inputs["signal"], inputs["resonant"], family, chosen,
                               record["modelling_uncertainty"]["events"])
    record["expected"] = expected_figures([model], edges)
    return record, model


def run_fits(output: dict, config: AnalysisConfig, unblind: bool = False) -> dict:
    """Fit every category and all together, in the configured mass window."""
    h = output["histograms"][MASS_HISTOGRAM]
    config.mass.check_edges(h.axes["mgg"].edges, "the histograms")
    records, models = [], []
    for category in h.axes["category"]:
        record, model = fit_category(output, category, config, unblind)
        records.append(record)
        if model is not None:
            models.append(model)
        log.info("category %s: %s", category, record["chosen_family"] or record.get("status"))
    edges = h.axes["mgg"].edges
    combined = {**expected_figures(models, edges), "categories": [m.name for m in models]} if models else {}
    window = config.mass
    return {"categories": records, "combined": combined, "unblinded": unblind,
            "without_function": [r["category"] for r in records if r.get("status") == NO_FUNCTION],
            "conventions": {"chi2_bin_width_gev": window.gof_bin_width, "blind_window": list(window.blind),
                            "mass_window": [window.low, window.high], "signal_scan": list(window.signal_scan),
                            "datasets_by_role": datasets_by_role(output),
                            "template": "continuum yy MC (TI) + NTNI data, yy fraction fitted to the TI data "
                                        "sidebands; Gaussian-process smoothed below "
                                        f"{config.fits.template_min_statistics:g}x the data statistics",
                            "fits": asdict(config.fits), "family_order": list(fits.FAMILY_ORDER)}}


def _spurious_of(record: dict, family: str) -> dict:
    return next((s for s in record.get("spurious_signal", []) if s.get("family") == family), {})


def category_rows(result: dict) -> list[dict]:
    """Per category: yields, function, its chi2 probability, spurious signal, bias, significance."""
    rows = []
    for r in result["categories"]:
        row = {"category": r["category"], "function": r["chosen_family"] or r.get("status", ""),
               "exponential_passes": _spurious_of(r, "exponential").get("passed")}
        template = r.get("template")
        if template:
            row.update(template_ratio=template["effective_over_data"], smoothed=template["smoothed"])
        if r["chosen_family"]:
            spur = _spurious_of(r, r["chosen_family"])
            row.update(signal=r["signal_in_window"], background=r["background_in_window"],
                       chi2_ndf=r["sideband_fits"][r["chosen_family"]]["chi2_ndf"],
                       p_value=r["sideband_fits"][r["chosen_family"]]["p_value"],
                       zeta_over_signal=spur["max_relative_to_expected"],
                       zeta_over_error=spur["max_relative_to_error"], bias=r["bias"]["mean_signal"],
                       allowance=r["bias"]["allowance"], modelling=r["modelling_uncertainty"]["events"],
                       modelling_source=r["modelling_uncertainty"]["source"],
                       z=r["expected"][WITH_MODELLING]["significance"],
                       z_without_modelling=r["expected"][WITHOUT_MODELLING]["significance"],
                       upper_limit=r["expected"][WITH_MODELLING]["upper_limit"])
        rows.append(row)
    return rows


def category_table(result: dict) -> str:
    """The table a physicist reads first, as aligned text."""
    lines = [f"{'category':<10}{'S(win)':>8}{'B(win)':>9}{'function':>12}{'chi2/ndf':>9}{'p':>7}"
             f"{'zeta/S':>8}{'zeta/dS':>8}{'bias':>7}{'allow':>7}{'tmpl/data':>10}{'d_mod':>9}{'Z_exp':>7}"
             f"{'Z_stat':>7}{'mu_95':>7}"]
    for row in category_rows(result):
        ratio = f"{row['template_ratio']:>9.1f}{'*' if row.get('smoothed') else ' '}" if "template_ratio" in row else ""
        if "z" not in row:
            lines.append(f"{row['category']:<10}  {row['function']}  {ratio}")
            continue
        lines.append(f"{row['category']:<10}{row['signal']:>8.2f}{row['background']:>9.1f}{row['function']:>12}"
                     f"{row['chi2_ndf']:>9.2f}{row['p_value']:>7.2f}{row['zeta_over_signal']:>8.2f}"
                     f"{row['zeta_over_error']:>8.2f}{row['bias']:>7.2f}{row['allowance']:>7.2f}{ratio:>10}"
                     f"{row['modelling']:>7.2f} {row['modelling_source'][0].upper()}{row['z']:>7.2f}"
                     f"{row['z_without_modelling']:>7.2f}{row['upper_limit']:>7.2f}")
    c = result.get("combined") or {}
    if c:
        headline, stat = c[WITH_MODELLING], c[WITHOUT_MODELLING]
        lines.append(f"{'combined':<10}{'':>94}{headline['significance']:>7.2f}{stat['significance']:>7.2f}"
                     f"{headline['upper_limit']:>7.2f}   mu = {headline['mu']:.2f} +/- {headline['mu_error']:.2f} "
                     f"(without the modelling uncertainty {stat['mu']:.2f} +/- {stat['mu_error']:.2f}, "
                     f"mu_95 {stat['upper_limit']:.2f})")
    if result.get("without_function"):
        lines.append(f"no acceptable function: {', '.join(result['without_function'])} (left out of the combination)")
    lines.append("* template smoothed by a Gaussian process; zeta = max(|S_spur| - 2 Delta_MC, 0); d_mod: the "
                 "modelling uncertainty in events (S: spurious signal, B: toy bias), a constrained signal-shaped "
                 "term in the likelihood of Z_exp and mu_95; Z_stat: without it")
    return "\n".join(lines)


def pyhf_summary(result: dict) -> list[str]:
    """pyhf's combined Z and mu_95 beside the own fit's, with and without the modelling terms (one line each)."""
    pyhf = result.get("pyhf") or {}
    lines = []
    for key, label in ((WITH_MODELLING, "with the modelling uncertainty"), (WITHOUT_MODELLING, "without it")):
        if key in pyhf:
            p, own, d = pyhf[key]["pyhf"], pyhf[key]["own"], pyhf[key]["relative_difference"]
            lines.append(f"pyhf {label}: Z = {p['significance']:.2f} (own fit {own['significance']:.2f}, "
                         f"{d['significance']:+.1%}), mu_95 = {p['upper_limit']:.2f} (own fit "
                         f"{own['upper_limit']:.2f}, {d['upper_limit']:+.1%})")
    return lines


def write_fit_results(result: dict, out_dir: str | Path) -> Path:
    """fits.json in the output folder."""
    return write_text(Path(out_dir) / "fits.json", json.dumps(result, indent=1, default=float) + "\n")
