"""``tth-adv fit``: per-category background model, function choice, bias, signal model, systematics, significance.

Per category of the processor output (TI region, nominal), in the configured mass window:

1. signal model: a double-sided Crystal Ball fitted to the ttH MC, the m_yy shape of every Higgs
   sample in the likelihood (the signal and each resonant dataset, at their MC yields;
   ``ttH_adv.stats.systematics``);
2. sideband fits of TI data (the signal window excluded) with every family; goodness of fit from
   the saturated-model Poisson likelihood ratio, its p-value from refitted toys where the
   sidebands hold fewer than ``fits.gof_toys_below`` events;
3. the background-only template (``ttH_adv.stats.templates``): continuum yy MC plus the reducible
   part from NTNI data, in the yy fraction the TI and NTNI data sidebands measure; the category's
   own shapes, or the inclusive shapes times the category's (or its control selection's) efficiency
   in m_yy where its own are short of ``fits.template_min_statistics`` x the data; its statistics
   from replicas;
4. the spurious-signal test of every family on the template, with the relaxed criterion
   zeta = max(|S_spur| - 2 Delta_MC, 0), Delta_MC from the template's replicas;
5. the function: among the families that pass 4 and whose goodness-of-fit probability reaches
   ``fits.min_gof_probability``, the one with the fewest parameters, then its next order (the only
   nested family) where an F-test asks for it.  Where nothing qualifies the category is kept, as
   ATLAS keeps it, with the family of smallest |S_spur| among those that fit the sidebands (any
   family where none does): ``fallback`` in fits.json, its spurious signal its width;
6. bias: background-only toys from the template, S+B fits with the chosen function at m_H;
7. the modelling uncertainty: the larger of the chosen function's spurious signal (max |S_spur|
   over the m_H scan) and its toys' |mean bias|, in events, a signal-shaped background term with a
   Gaussian-constrained normalisation (``likelihood.CategoryModel.modelling``), as ATLAS H->yy
   analyses carry the spurious signal;
8. Asimov data (blinded: chosen sideband fit + expected signal + resonant) or the data
   (``--unblind``); S+B fits give the expected significance per category and combined, mu, and
   the expected 95% CL upper limit on mu: with every uncertainty (``ALL``, the headline), with the
   statistical and modelling ones (``STAT_MODELLING``) and statistical only (``STATISTICAL``), all
   over the same categories; and the headline without the fall-back categories (``PASSING``).
   The nuisance parameters' impacts on mu come with the combination.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..config import AnalysisConfig, FitConfig
from ..errors import TthAdvError
from ..inputs.samples import ROLES
from ..output import (
    CONTROL_HISTOGRAM,
    INCLUSIVE,
    INCLUSIVE_HISTOGRAM,
    MASS_HISTOGRAM,
    category_slice,
)
from ..records import read_record
from . import fits, likelihood
from .fit_results import (
    Bias,
    CategoryFit,
    Combination,
    Conventions,
    FitResult,
    FTest,
    FunctionChoice,
    Modelling,
    SidebandFit,
    SignalFit,
    SpuriousTest,
    Variants,
)
from .likelihood import CategoryModel
from .systematics import higgs_samples
from .templates import Components, RegionSpectra, Template, build_template

log = logging.getLogger(__name__)

FALLBACK = "fall-back: the family of smallest spurious signal"
# The expected figures: every uncertainty (the headline), statistical and modelling, statistical only; and the
# headline over the categories with an acceptable function alone.
ALL, STAT_MODELLING, STATISTICAL, PASSING = ("all_uncertainties", "statistical_and_modelling", "statistical_only",
                                             "passing_categories")


def chosen_background(record: CategoryFit, edges: np.ndarray) -> np.ndarray:
    """Expected background per bin from a category's chosen sideband fit."""
    fit = record.chosen_fit()
    return fits.BackgroundFit(record.chosen_family, fit.params, fit.norm, 0.0, 0.0, 0, 1.0, True).expected(edges)


def datasets_by_role(output: dict) -> dict[str, list[str]]:
    """The datasets of each role (data, signal, resonant, continuum), from the output's metadata."""
    roles = output.get("metadata", {}).get("roles")
    if not roles:
        raise TthAdvError("the histograms carry no sample roles (made by an older version?): rerun tth-adv run")
    return {role: sorted(name for name, r in roles.items() if r == role) for role in ROLES}


@dataclass(frozen=True)
class CategoryInputs:
    """The histograms one category's fits need, each the sum over the datasets of one role."""

    edges: np.ndarray
    data_ti: np.ndarray
    signal: np.ndarray
    signal_variance: np.ndarray
    template: Components
    inclusive: Components | None
    control: Components | None  # the category's control selection: its events and the rest of that selection's


def category_inputs(output: dict, category: str) -> CategoryInputs:
    """The histograms one category's fits need, each the sum over the datasets of one role."""
    h = output["histograms"][MASS_HISTOGRAM]
    by_role = datasets_by_role(output)
    data_ti, _ = category_slice(h, by_role["data"], "TI", category)
    signal, signal_var = category_slice(h, by_role["signal"], "TI", category)
    inclusive, rest = output["histograms"].get(INCLUSIVE_HISTOGRAM), output["histograms"].get(CONTROL_HISTOGRAM)
    # the yy fraction's simulated NTNI/TI ratios are the inclusive selection's, the category's only without it
    own = template_components(h, by_role, category, with_regions=inclusive is None)
    control = None
    if rest is not None and category in rest.axes["category"]:
        control = own.plus(template_components(rest, by_role, category, with_regions=False))
    return CategoryInputs(h.axes["mgg"].edges, data_ti, signal, signal_var, own,
                          template_components(inclusive, by_role, INCLUSIVE) if inclusive is not None else None, control)


def template_components(h, by_role: dict[str, list[str]], category: str, with_regions: bool = True) -> Components:
    """A category's template ingredients in one histogram: continuum yy MC (TI) and NTNI data, and where a reducible
    MC is given (and ``with_regions``) the simulated TI and NTNI spectra that measure the yy fraction."""
    samples = {name: category_slice(h, [name], "TI", category) for name in by_role["continuum"]}
    size = h.axes["mgg"].size
    continuum = sum((values for values, _ in samples.values()), np.zeros(size))
    continuum_var = sum((variance for _, variance in samples.values()), np.zeros(size))
    regions = None
    if by_role["reducible"] and with_regions:
        regions = RegionSpectra(continuum, category_slice(h, by_role["continuum"], "NTNI", category)[0],
                                *(category_slice(h, by_role["reducible"], r, category)[0] for r in ("TI", "NTNI")))
    return Components(continuum, continuum_var, category_slice(h, by_role["data"], "NTNI", category)[0], samples,
                      regions)


def spurious_signal_tests(template: Template, edges: np.ndarray, signal: fits.SignalModel, config: AnalysisConfig
                          ) -> list[SpuriousTest]:
    """The spurious-signal test of every family on the template (relaxed criterion, Delta_MC from its replicas)."""
    # The signal's statistical uncertainty in data: a Poisson S+B fit to the template at the data's yield.
    _, data_error = fits.fit_s_plus_b_poisson(template.values, edges, "exponential", signal.shape(edges))
    return [fits.spurious_signal(template.values, template.fit_variance, edges, family, signal, signal.yield_,
                                 data_error, config.mass.scan_masses(), config.fits.spurious_fraction_of_signal,
                                 config.fits.spurious_fraction_of_error, template.replicas)
            for family in fits.FAMILY_ORDER]


class GoodnessOfFit:
    """The sideband fits' goodness-of-fit p-values: chi2 asymptotics, or refitted toys (computed when first asked
    for) where the sidebands hold fewer than ``fits.gof_toys_below`` events."""

    def __init__(self, sideband: dict[str, fits.BackgroundFit], events: float, edges: np.ndarray, mask: np.ndarray,
                 width: float, config: FitConfig) -> None:
        self.sideband, self.edges, self.mask, self.width, self.config = sideband, edges, mask, width, config
        self.use_toys = events < config.gof_toys_below

    def p_value(self, family: str) -> float:
        """The family's goodness-of-fit probability (toys replace the asymptotic value once computed)."""
        fit = self.sideband[family]
        if self.use_toys and fit.p_value_from != "toys":
            fit.p_value = fits.gof_p_value_from_toys(fit, self.edges, self.mask, self.width, self.config.gof_toys)
            fit.p_value_from = "toys"
        return fit.p_value

    def fits(self, family: str) -> bool:
        """Whether the family's sideband fit is acceptable: converged (a fit that did not can be a spike on a
        sparse sideband's one event, empty under the peak), with a goodness-of-fit probability high enough."""
        return self.sideband[family].converged and self.p_value(family) >= self.config.min_gof_probability


def choose_function(spurious: list[SpuriousTest], sideband: dict[str, fits.BackgroundFit], config: FitConfig,
                    gof: GoodnessOfFit | None = None) -> tuple[str | None, FunctionChoice]:
    """The family with the fewest parameters passing the spurious-signal test and the goodness of fit, then its
    next order (nested) where the F-test asks for it.  None when nothing qualifies."""
    gof = gof or GoodnessOfFit(sideband, float("inf"), np.zeros(0), np.zeros(0, bool), 1.0, config)
    passed = [f for f in fits.FAMILY_ORDER if f in {r.family for r in spurious if r.passed}]
    choice = FunctionChoice(spurious_passed=passed)
    chosen = next((f for f in passed if gof.fits(f)), None)
    if chosen is None:
        return None, choice
    choice.qualified.append(chosen)
    while (higher := fits.NEXT_ORDER.get(chosen)) in passed and gof.fits(higher):
        choice.qualified.append(higher)
        probability = fits.f_test_probability(sideband[chosen], sideband[higher])
        choice.f_tests.append(FTest(chosen, higher, probability))
        if probability >= config.f_test_probability:
            break
        chosen = higher
    return chosen, choice


def fallback_function(spurious: list[SpuriousTest], gof: GoodnessOfFit) -> str:
    """The family of smallest spurious signal among those whose sideband fit is acceptable (any where none is)."""
    ranked = sorted(spurious, key=lambda r: r.max_abs_signal)
    return next((r.family for r in ranked if gof.fits(r.family)), ranked[0].family)


def bias_test(template: Template, edges: np.ndarray, family: str, signal: fits.SignalModel, allowance: float,
              toys: int) -> Bias:
    """Mean and spread of the signal fitted to background-only toys from the template, against the allowance."""
    fitted = fits.bias_toys(template.values, edges, family, signal.shape(edges), toys)
    mean, spread = float(fitted.mean()), float(fitted.std(ddof=1)) if toys > 1 else 0.0
    return Bias(toys, mean, spread, spread / np.sqrt(max(toys, 1)), allowance, abs(mean) < allowance)


def modelling_uncertainty(spurious: SpuriousTest, bias: Bias) -> Modelling:
    """The category's background-modelling uncertainty in events: the larger of the chosen function's
    spurious signal (max |S_spur| over the m_H scan) and its bias toys' |mean signal|, and which it is."""
    spurious_signal, mean_bias = float(spurious.max_abs_signal), abs(float(bias.mean_signal))
    return Modelling(max(spurious_signal, mean_bias), "spurious" if spurious_signal >= mean_bias else "bias",
                     spurious_signal, mean_bias)


def variants(models: list[CategoryModel]) -> dict[str, list[CategoryModel]]:
    """The same categories with every uncertainty, with the statistical and modelling ones, statistical only."""
    return {ALL: models, STAT_MODELLING: likelihood.without_systematics(models),
            STATISTICAL: likelihood.without_modelling(likelihood.without_systematics(models))}


# What each variant's figures include (profile-likelihood mu error, limit): the headline everything; the
# statistical-only limit is compared with pyhf's; the others need Z and mu's HESSE error.
COMBINED = {ALL: (True, True), STAT_MODELLING: (False, False), STATISTICAL: (False, True)}
PER_CATEGORY = {ALL: (False, True), STATISTICAL: (False, False)}
# Z alone (HESSE's mu error, no limit): what a comparison's further seeds need (``analyse(..., light=True)``)
COMBINED_LIGHT = {key: (False, False) for key in COMBINED}
PER_CATEGORY_LIGHT = {ALL: (False, False), STATISTICAL: (False, False)}


def expected_figures(models: list[CategoryModel], edges: np.ndarray,
                     figures: dict[str, tuple[bool, bool]] = COMBINED) -> Variants:
    """Expected Z, mu and its error (and mu_95) of the categories together, for each uncertainty variant in
    ``figures`` ({variant: (profile-likelihood mu error, limit)})."""
    return Variants(**{key: likelihood.expected_results(part, edges, *figures[key])
                       for key, part in variants(models).items() if key in figures})


def sideband_fit_record(fit: fits.BackgroundFit) -> SidebandFit:
    """A sideband fit as fits.json keeps it."""
    return SidebandFit(fit.params, fit.norm, fit.deviance, fit.ndf, fit.deviance_ndf, fit.p_value, fit.p_value_from,
                       fit.converged)


def fit_category(output: dict, category: str, config: AnalysisConfig, unblind: bool, light: bool = False
                 ) -> tuple[CategoryFit, CategoryModel | None]:
    """All fits of one category; returns its record and its S+B model (None if not fitted).  ``light``: the
    expected figures without limits and profile-likelihood errors."""
    window, settings = config.mass, config.fits
    inputs = category_inputs(output, category)
    edges = inputs.edges
    side = window.sideband_bins(edges)
    record = CategoryFit(category, float(inputs.data_ti[side].sum()), float(inputs.signal.sum()))
    # the cheap checks first: a category without sideband data or signal needs no template
    template = (None if record.data_ti_sideband < 1 or inputs.signal.sum() <= 0 else
                build_template(inputs.data_ti, inputs.template, edges, window, settings, inputs.inclusive,
                               control=inputs.control))
    if template is None:
        record.status = "no sideband data, signal or template: not fitted"
        return record, None
    signal = fits.fit_signal(inputs.signal, np.maximum(inputs.signal_variance, 1e-12), edges, window)
    record.signal_model = SignalFit(signal.params, signal.chi2_ndf)
    sideband = {name: fits.fit_background(inputs.data_ti, edges, name, side, window.gof_bin_width)
                for name in fits.FAMILY_ORDER}
    gof = GoodnessOfFit(sideband, record.data_ti_sideband, edges, side, window.gof_bin_width, settings)
    record.template = template.record()
    record.spurious_signal = spurious_signal_tests(template, edges, signal, config)
    exponential = record.spurious("exponential")
    worst = exponential.worst()
    record.template.signal_statistics_ratio = ((exponential.data_signal_error / worst.delta_mc) ** 2
                                               if worst.delta_mc > 0 else float("inf"))
    family, record.function_choice = choose_function(record.spurious_signal, sideband, settings, gof)
    if family is None:
        family, record.fallback = fallback_function(record.spurious_signal, gof), True
    record.chosen_family, record.status = family, FALLBACK if record.fallback else "ok"
    record.sideband_fits = {name: sideband_fit_record(f) for name, f in sideband.items()}
    spurious = record.spurious(family)
    allowance = max(settings.spurious_fraction_of_signal * signal.yield_,
                    settings.spurious_fraction_of_error * spurious.data_signal_error)
    record.bias = bias_test(template, edges, family, signal, allowance, settings.bias_toys)
    chosen = sideband[family]
    background = chosen.expected(edges)
    record.background_in_window = float(background[~side].sum())
    record.signal_in_window = float(inputs.signal[~side].sum())
    record.modelling_uncertainty = modelling_uncertainty(spurious, record.bias)
    samples = higgs_samples(output, category, signal, config, datasets_by_role(output))
    record.resonant = float(samples.resonant_total.sum())
    record.modifiers = sorted({m.name for m in samples.modifiers})
    observed = inputs.data_ti if unblind else likelihood.asimov(background, samples.signal, samples.resonant_total)
    model = CategoryModel(category, observed, samples.signal, samples.resonant_total, family, chosen,
                          record.modelling_uncertainty.events, samples.modifiers, samples.resonant)
    record.expected = expected_figures([model], edges, PER_CATEGORY_LIGHT if light else PER_CATEGORY)
    return record, model


def run_fits(output: dict, config: AnalysisConfig, unblind: bool = False, impacts: bool = True) -> FitResult:
    """Fit every category and all together, in the configured mass window (with the nuisances' impacts)."""
    return analyse(output, config, unblind, impacts)[0]


def combine(models: list[CategoryModel], records: list[CategoryFit], edges: np.ndarray, light: bool,
            impacts: bool) -> Combination:
    """All fitted categories together: every variant, the headline without the fall-backs, the impacts."""
    figures = expected_figures(models, edges, COMBINED_LIGHT if light else COMBINED)
    fallbacks = {r.category for r in records if r.fallback}
    passing = [m for m in models if m.name not in fallbacks]
    headline = figures.all_uncertainties
    without_fallbacks = (likelihood.expected_results(passing, edges, False, not light)
                         if passing and len(passing) < len(models) else headline if passing else None)
    return Combination(headline, figures.statistical_and_modelling, figures.statistical_only,
                       [m.name for m in models], light, without_fallbacks, [m.name for m in passing],
                       likelihood.impacts(models, edges) if impacts else [])


def analyse(output: dict, config: AnalysisConfig, unblind: bool = False, impacts: bool = True, light: bool = False
            ) -> tuple[FitResult, list[CategoryModel]]:
    """``run_fits``'s result and the categories' S+B models it fitted (what the pyhf workspace exports).

    ``light``: every significance, but no limits and HESSE's mu errors (a comparison's further seeds)."""
    h = output["histograms"][MASS_HISTOGRAM]
    config.mass.check_edges(h.axes["mgg"].edges, "the histograms")
    records, models = [], []
    for category in h.axes["category"]:
        record, model = fit_category(output, category, config, unblind, light)
        records.append(record)
        if model is not None:
            models.append(model)
        log.info("category %s: %s%s", category, record.chosen_family or record.status,
                 " (fall-back)" if record.fallback else "")
    edges = h.axes["mgg"].edges
    combined = combine(models, records, edges, light, impacts) if models else None
    return FitResult(records, combined, unblind, [r.category for r in records if r.fallback],
                     conventions(config, datasets_by_role(output))), models


def conventions(config: AnalysisConfig, by_role: dict[str, list[str]]) -> Conventions:
    """How the fits were made, for the reader of fits.json: the window, the template recipe, the settings."""
    window = config.mass
    recipe = ("continuum yy MC (TI) + NTNI data, yy fraction fitted to the TI data sidebands; the category's own "
              f"shapes from {config.fits.template_min_statistics:g}x the data statistics, else the inclusive shapes "
              "times the category's efficiency in m_yy")
    return Conventions(window.gof_bin_width, list(window.blind), [window.low, window.high], list(window.signal_scan),
                       by_role, recipe, config.fits, asdict(config.uncertainties), list(fits.FAMILY_ORDER))


@dataclass
class CategoryRow:
    """One category's line of the tables a physicist reads: yields, function, its tests, template, Z."""

    category: str
    function: str
    fallback: bool
    exponential_passes: bool | None
    template_ratio: float | None = None
    template_method: str | None = None
    closure_p_value: float | None = None
    signal: float | None = None
    background: float | None = None
    deviance_ndf: float | None = None
    p_value: float | None = None
    zeta_over_signal: float | None = None
    zeta_over_error: float | None = None
    bias: float | None = None
    allowance: float | None = None
    modelling: float | None = None
    modelling_source: str | None = None
    z: float | None = None
    z_statistical: float | None = None
    upper_limit: float | None = None


def category_rows(result: FitResult) -> list[CategoryRow]:
    """Per category: yields, function, its goodness of fit, spurious signal, bias, template, significance."""
    rows = []
    for r in result.categories:
        exponential = r.spurious("exponential")
        row = CategoryRow(r.category, r.chosen_family or r.status, r.fallback,
                          exponential.passed if exponential else None)
        if r.template:
            row.template_ratio, row.template_method = r.template.effective_over_data, r.template.method
            row.closure_p_value = r.template.closure_p_value
        if r.fitted:
            spur, fit = r.spurious(r.chosen_family), r.chosen_fit()
            row.signal, row.background = r.signal_in_window, r.background_in_window
            row.deviance_ndf, row.p_value = fit.deviance_ndf, fit.p_value
            row.zeta_over_signal, row.zeta_over_error = spur.max_relative_to_expected, spur.max_relative_to_error
            row.bias, row.allowance = r.bias.mean_signal, r.bias.allowance
            row.modelling, row.modelling_source = r.modelling_uncertainty.events, r.modelling_uncertainty.source
            row.z, row.z_statistical = r.expected.all_uncertainties.significance, r.expected.statistical_only.significance
            row.upper_limit = r.expected.all_uncertainties.upper_limit
        rows.append(row)
    return rows


def _optional(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def category_table(result: FitResult) -> str:
    """The table a physicist reads first, as aligned text."""
    lines = [f"{'category':<10}{'S(win)':>8}{'B(win)':>9}{'function':>13}{'D/ndf':>7}{'p':>6}"
             f"{'zeta/S':>8}{'zeta/dS':>8}{'bias':>7}{'allow':>7}{'tmpl/data':>10}{'d_mod':>9}{'Z_exp':>7}"
             f"{'Z_stat':>7}{'mu_95':>7}"]
    for row in category_rows(result):
        ratio = (f"{row.template_ratio:>9.0f}{'e' if row.template_method != 'own' else ' '}"
                 if row.template_ratio is not None else "")
        if row.z is None:
            lines.append(f"{row.category:<10}  {row.function}  {ratio}")
            continue
        function = row.function + ("!" if row.fallback else "")
        lines.append(f"{row.category:<10}{row.signal:>8.2f}{row.background:>9.1f}{function:>13}"
                     f"{row.deviance_ndf:>7.2f}{row.p_value:>6.2f}{row.zeta_over_signal:>8.2f}"
                     f"{row.zeta_over_error:>8.2f}{row.bias:>7.2f}{row.allowance:>7.2f}{ratio:>10}"
                     f"{row.modelling:>7.2f} {row.modelling_source[0].upper()}{row.z:>7.2f}"
                     f"{row.z_statistical:>7.2f}{_optional(row.upper_limit):>7}")
    c = result.combined
    if c:
        headline, stat, modelling = c.all_uncertainties, c.statistical_only, c.statistical_and_modelling
        lines.append(f"{'combined':<10}{'':>95}{headline.significance:>7.2f}{stat.significance:>7.2f}"
                     f"{_optional(headline.upper_limit):>7}   mu = {headline.mu:.2f} +/- {headline.mu_error:.2f} "
                     f"(statistical and modelling {modelling.mu_error:.2f}, statistical "
                     f"{stat.mu_error:.2f}, HESSE); Z {headline.significance:.2f} / "
                     f"{modelling.significance:.2f} / {stat.significance:.2f}")
        if c.passing_categories and result.fallback:
            lines.append(f"without the fall-back categories ({', '.join(result.fallback)}): "
                         f"Z = {c.passing_categories.significance:.2f}, mu_95 "
                         f"{_optional(c.passing_categories.upper_limit)}")
    lines.append("e: template from the inclusive shapes times the category's efficiency in m_yy; !: fall-back "
                 "function (none passed); zeta = max(|S_spur| - 2 Delta_MC, 0); D: saturated-model deviance; d_mod: "
                 "the modelling uncertainty in events (S: spurious signal, B: toy bias); Z_exp and mu_95 with every "
                 "uncertainty, Z_stat statistical only")
    return "\n".join(lines)


def impact_table(result: FitResult, top: int = 12) -> list[str]:
    """The nuisance parameters ranked by their impact on mu (Markdown)."""
    impacts = result.combined.impacts if result.combined else []
    lines = ["| nuisance parameter | pull | constraint | Δμ (+1σ) | Δμ (−1σ) |", "|---|---|---|---|---|"]
    lines += [f"| {r.parameter} | {r.pull:+.2f} | {r.constraint:.2f} | "
              f"{r.linear if r.impact_up is None else r.impact_up:+.3f} | "
              f"{-r.linear if r.impact_down is None else r.impact_down:+.3f} |" for r in impacts[:top]]
    return lines if impacts else []


def pyhf_summary(result: FitResult) -> list[str]:
    """pyhf's combined Z and mu_95 beside the own fit's (one line per variant compared)."""
    lines = []
    checks = (("with every uncertainty", result.pyhf.all_uncertainties if result.pyhf else None),
              ("statistical only", result.pyhf.statistical_only if result.pyhf else None))  # what pyhf compares
    for label, check in checks:
        if check is not None and check.failed:
            lines.append(f"pyhf {label}: {check.failed}")
        elif check is not None:
            p, own, d = check.pyhf, check.own, check.relative_difference
            lines.append(f"pyhf {label}: Z = {p.significance:.2f} (own fit {own.significance:.2f}, "
                         f"{d.significance:+.1%}), mu_95 = {p.upper_limit:.2f} (own fit "
                         f"{own.upper_limit:.2f}, {d.upper_limit:+.1%})")
    return lines


FITS_FILE = "fits.json"


def write_fit_results(result: FitResult, out_dir: str | Path) -> Path:
    """fits.json in the output folder."""
    return write_text(Path(out_dir) / FITS_FILE, json.dumps(result.to_dict(), indent=1, default=float) + "\n")


def read_fit_results(folder: str | Path) -> FitResult:
    """fits.json of a fits folder (``tth-adv fit --out``); one error naming it where it is missing or not fits."""
    return read_record(FitResult, Path(folder) / FITS_FILE, "the fits of tth-adv fit", "rerun tth-adv fit",
                       required=["categories", "combined"])
