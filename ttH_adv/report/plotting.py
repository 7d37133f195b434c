"""Plots (matplotlib + mplhep, the ``plot`` extra) and the Markdown report.

Every function writes one PNG and returns its path; inputs are the saved outputs of the other
steps (processor output, feature dump, training results, fit results), so plots can be redone
without rerunning anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..config import MassWindow
from ..event.selections import COMMON_STEPS
from ..stats.compare import MATCHED_FLATNESS, read_training_summary
from ..stats.fit_analysis import CategoryRow, category_inputs, chosen_background
from ..stats.fit_results import CategoryFit, FitResult
from ..stats.templates import CONTROL_EFFICIENCY
from ..stats.training_results import Chosen, LambdaChoice, TrainedEntry, TrainingMetrics

EXPERIMENT_TEXT = "Open Data"  # mplhep's ATLAS label: "ATLAS Open Data", "Simulation" added for simulation


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt


def colours() -> list:
    """A colour-blind-safe cycle (Petroff 2021, matplotlib's "petroff10"), one colour per dataset."""
    import matplotlib

    return list(matplotlib.color_sequences["petroff10"])


def experiment_label(ax, luminosity_pb: float | None, simulation: bool) -> None:
    """ATLAS Open Data label with sqrt(s) = 13 TeV and the luminosity ("Simulation" where it is simulation)."""
    import mplhep

    lumi = None if luminosity_pb is None else round(luminosity_pb / 1000.0, 1)
    mplhep.atlas.label(text=EXPERIMENT_TEXT, data=not simulation, lumi=lumi, com=13, ax=ax, loc=0)


def _luminosity(output: dict) -> float | None:
    return (output.get("metadata") or {}).get("luminosity_pb")


def _rebin(values: np.ndarray, group: int) -> np.ndarray:
    return values.reshape(-1, group).sum(axis=1)


def figure_category_fit(output: dict, record: CategoryFit, window: MassWindow):
    """m_yy of one category: TI data (sidebands), chosen background, background + Higgs, blinded band, pulls."""
    plt = _pyplot()
    inputs = category_inputs(output, record.category)
    edges = inputs.edges
    group = max(1, round(window.gof_bin_width / (edges[1] - edges[0])))  # display in goodness-of-fit bins
    coarse = edges[::group]
    centres = 0.5 * (coarse[:-1] + coarse[1:])
    data = _rebin(inputs.data_ti, group)
    expected = chosen_background(record, edges)  # per fine bin
    higgs_fine = higgs_expectation(output, record, edges)
    background, higgs = _rebin(expected, group), _rebin(higgs_fine, group)
    side = ~window.in_window(centres)
    fit = record.chosen_fit()
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05},
                                      figsize=(8, 7))
    top.errorbar(centres[side], data[side], yerr=np.sqrt(data[side]), fmt="ko", markersize=4, label="Data (TI)")
    fine = 0.5 * (edges[:-1] + edges[1:])
    top.plot(fine, expected * group, "-", color=colours()[0],
             label=f"Background: {record.chosen_family}{' (fall-back)' if record.fallback else ''}\n"
                   f"$-2\\ln\\lambda$/ndf = {fit.deviance_ndf:.2f}, p = {fit.p_value:.2f}")
    top.plot(fine, (expected + higgs_fine) * group, "--",
             color=colours()[1], label="Background + Higgs (S+B, $\\mu$ = 1)")
    top.axvspan(*window.blind, color="grey", alpha=0.15, label="Blinded")
    top.set_ylim(0, 1.6 * max(float(np.max(data[side], initial=0)), float(np.max(background + higgs)), 1.0))
    top.set_ylabel(f"Events / {coarse[1] - coarse[0]:g} GeV")
    top.legend(title=f"Category {record.category}", fontsize=10, title_fontsize=11, loc="upper right")
    experiment_label(top, _luminosity(output), simulation=False)
    error = np.sqrt(np.maximum(background, 1e-9))
    pulls = np.where(side & (background > 0), (data - background) / error, np.nan)
    bottom.axhline(0, color=colours()[0])
    bottom.plot(centres, pulls, "ko", markersize=4)
    bottom.axvspan(*window.blind, color="grey", alpha=0.15)
    bottom.set_ylim(-3.5, 3.5)
    bottom.set_ylabel("Pull")
    bottom.set_xlabel("$m_{\\gamma\\gamma}$ [GeV]")
    bottom.set_xlim(edges[0], edges[-1])
    return fig


def higgs_expectation(output: dict, record: CategoryFit, edges: np.ndarray) -> np.ndarray:
    """The fit's Higgs expectation per bin (signal and resonant yields in the category's signal model)."""
    from ..stats.fits import SignalModel

    signal = record.signal_model
    total = record.expected_signal + (record.resonant or 0.0)
    return total * SignalModel(signal.params, record.expected_signal, signal.chi2_ndf).shape(edges)


def plot_category_fit(output: dict, record: CategoryFit, window: MassWindow, path: Path) -> Path:
    """The category's fit plot as PNG and PDF."""
    return _save(figure_category_fit(output, record, window), path)


def sculpting_inputs(dump_dir: str | Path, score_column: str = "score") -> tuple[np.ndarray, np.ndarray, float]:
    """(NTNI data scores, their m_yy, the score cut at 50% ttH signal efficiency) from a scored dump.

    Only events in a channel (or a template control selection, left out here) carry a score: the
    processor scores what it can categorise.
    """
    import pyarrow.compute as pc

    from ..dump import read_dump

    table = read_dump(dump_dir, columns=[score_column, "mgg", "role", "region", "systematic", "channel"])
    table = table.filter(pc.and_(pc.equal(table["systematic"], "nominal"), pc.not_equal(table["channel"], "none")))
    table = table.to_pandas().rename(columns={score_column: "score"})
    sig = table[(table.role == "signal") & (table.region == "TI")]
    bkg = table[(table.role == "data") & (table.region == "NTNI")]
    return bkg.score.to_numpy(), bkg.mgg.to_numpy(), float(np.quantile(sig.score, 0.5))


def figure_sculpting(scores: np.ndarray, mass: np.ndarray, threshold: float, window: MassWindow,
                     luminosity_pb: float | None):
    """NTNI data m_yy shape before and after the cut at 50% signal efficiency (normalised), with its JSD."""
    from ..stats import metrics

    plt = _pyplot()
    binning = metrics.mass_binning(window)
    edges = binning.edges
    passed = scores >= threshold
    fig, ax = plt.subplots(figsize=(8, 6))
    tallest = 0.0
    for (label, selected, style), colour in zip((("NTNI data in a channel", np.ones_like(passed), "-"),
                                                 ("Pass (50% signal eff.)", passed, "-"),
                                                 ("Fail", ~passed, "--")), colours(), strict=False):
        h, _ = np.histogram(mass[selected], edges, density=True)
        tallest = max(tallest, float(h.max(initial=0)))
        ax.stairs(h, edges, linestyle=style, color=colour, label=label)
    sculpting = metrics.jsd_at_signal_efficiency(scores, mass, threshold, None, binning, toys=20)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.5 * tallest)
    ax.set_xlabel("$m_{\\gamma\\gamma}$ [GeV]")
    ax.set_ylabel("Normalised density")
    ax.ticklabel_format(axis="y", style="plain")  # an offset text would sit on the experiment label
    ax.legend(title=f"JSD(pass, fail) = {sculpting['jsd']:.1e} = {sculpting['ratio']:.1f}x floor\n"
                    f"out-of-fold scores; {binning.describe()}", fontsize=10, title_fontsize=10)
    experiment_label(ax, luminosity_pb, simulation=False)
    return fig


def plot_sculpting(dump_dir: str | Path, window: MassWindow, path: Path, luminosity_pb: float | None = None,
                   score_column: str = "score") -> Path:
    """The sculpting plot of a scored dump (one model's score column) as PNG and PDF."""
    return _save(figure_sculpting(*sculpting_inputs(dump_dir, score_column), window, luminosity_pb), path)


def plot_roc(results: TrainingView, path: Path, luminosity_pb: float | None = None) -> Path:
    """Out-of-fold ROC curves of every trained method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for r, colour in zip(first_seeds(results), colours() * 2, strict=False):
        roc = r.metrics.roc
        if roc:
            ax.plot(roc.signal_efficiency, roc.background_efficiency, color=colour, label=r.label)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(1e-3, 1.5)
    ax.set_xlabel("Signal efficiency")
    ax.set_ylabel("Background efficiency")
    ax.legend(fontsize=9, loc="lower right")
    experiment_label(ax, luminosity_pb, simulation=True)
    return _save(fig, path)


def first_seeds(results: TrainingView) -> list[TrainedEntry]:
    """Each (feature set, method, lambda)'s result of its first seed."""
    first: dict[tuple, TrainedEntry] = {}
    for r in results.results:
        key = (r.feature_set, r.method, r.lam)
        if key not in first or r.seed < first[key].seed:
            first[key] = r
    return list(first.values())


@dataclass(frozen=True)
class ParetoPoint:
    """One lambda of a method's curve: R50 and JSD50/floor, mean and sd over its seeds."""

    lam: float
    seeds: int
    r50_mean: float
    r50_sd: float
    ratio50_mean: float
    ratio50_sd: float


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def pareto_curves(results: TrainingView) -> dict[tuple[str, str], list[ParetoPoint]]:
    """Per (feature set, method): one point per lambda, R50 and JSD50/floor as mean and sd over its seeds."""
    curves: dict[tuple[str, str], dict[float, list]] = {}
    for r in results.results:
        curves.setdefault((r.feature_set, r.method), {}).setdefault(r.lam, []).append(r.metrics)
    return {key: [ParetoPoint(lam, len(ms), float(np.mean([m.r50 for m in ms])), _sd([m.r50 for m in ms]),
                              float(np.mean([m.ratio50 for m in ms])), _sd([m.ratio50 for m in ms]))
                  for lam, ms in sorted(by_lambda.items())] for key, by_lambda in curves.items()}


def plot_pareto(results: TrainingView, path: Path, luminosity_pb: float | None = None) -> Path:
    """R50 against JSD50/floor: one curve per method along its lambdas (seed error bars), and the ceiling's curve
    (the unconstrained network made flat by cross-fitted maps of several binnings) per feature set."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    palette = colours()
    xs, ys = [], []
    for (feature_set, method), points, colour in zip(*zip(*pareto_curves(results).items(), strict=True),
                                                     palette * 4, strict=False):
        x = [p.ratio50_mean for p in points]
        y = [p.r50_mean for p in points]
        ax.errorbar(x, y, xerr=[p.ratio50_sd for p in points], yerr=[p.r50_sd for p in points], fmt="o-",
                    color=colour, capsize=3, label=f"{method} ({feature_set})" + (
                        f", λ {', '.join(format(p.lam, 'g') for p in points)}" if len(points) > 1 else ""))
        xs += x
        ys += y
    seen = set()
    for r in results.results:
        curve = r.metrics.ceiling_curve
        if curve and r.feature_set not in seen:
            seen.add(r.feature_set)
            points = sorted((p.ratio50, p.r50) for p in curve)
            ax.plot(*zip(*points, strict=True), ":", color="black", marker=".",
                    label=f"ceiling, {r.feature_set} (cross-fitted maps)")
            xs += [p[0] for p in points]
            ys += [p[1] for p in points]
    for target in MATCHED_FLATNESS:
        ax.axvline(target, color="grey", ls="--", lw=0.8)
    ax.axvline(1.0, color="grey", lw=0.8, label="the floor (random selection)")
    ax.set_xscale("log")
    ax.set_xlim(0.5 * min(xs + [1.0]), 2.0 * max(xs + [max(MATCHED_FLATNESS)]))
    ax.set_ylim(0, 1.4 * max(ys))
    ax.set_xlabel(f"JSD50 / floor  ({results.jsd_binning}; dashed: "
                  f"{' and '.join(format(f, 'g') for f in MATCHED_FLATNESS)})")
    ax.set_ylabel("R50 (1 / bkg. eff. at 50% sig. eff.)")
    ax.legend(fontsize=7, loc="upper left")
    experiment_label(ax, luminosity_pb, simulation=True)
    return _save(fig, path)


def plot_scores(results: TrainingView, path: Path, luminosity_pb: float | None = None) -> Path:
    """Train/test score distributions of the chosen result's fold-0 network."""
    plt = _pyplot()
    want = results.chosen
    chosen = next(r for r in results.results if (r.method, r.lam, r.feature_set, r.seed)
                  == (want.method, want.lam, want.feature_set, want.seed))
    histograms = chosen.metrics.score_histograms
    fig, ax = plt.subplots(figsize=(7, 6))
    edges = np.linspace(0, 1, 41)
    tallest = 1.0
    for (label, key), colour in zip((("signal", "signal"), ("background", "background")), colours(), strict=False):
        h = histograms.get(key)
        if h:
            ax.stairs(h.train, edges, color=colour, label=f"{label}, training events")
            ax.stairs(h.test, edges, color=colour, linestyle=":", label=f"{label}, test events")
            tallest = max(tallest, max(h.train), max(h.test))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.4 * tallest)
    ax.set_xlabel("Score (fold 0 network)")
    ax.set_ylabel("Normalised density")
    ax.legend(title=f"chosen: {chosen.label}", fontsize=9, title_fontsize=10)
    experiment_label(ax, luminosity_pb, simulation=True)
    return _save(fig, path)


def figure_cutflow(output: dict):
    """Left: fraction of events after each sequential step, per dataset; right: the region/channel split."""
    plt = _pyplot()
    cutflows = dict(sorted(output["cutflow"].items()))
    splits = [s for s in next(iter(cutflows.values())) if s not in COMMON_STEPS]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.3]})
    def axis_bottom(steps) -> float:  # each panel's axis follows its content
        fractions = [c[s]["events"] / (c["all"]["events"] or 1) for c in cutflows.values() for s in steps]
        return 0.3 * min((f for f in fractions if f > 0), default=1.0)

    bottoms = {"left": axis_bottom(COMMON_STEPS), "right": axis_bottom(splits)}
    width = 0.8 / max(len(cutflows), 1)
    for i, ((name, cutflow), colour) in enumerate(zip(cutflows.items(), colours(), strict=False)):
        total = cutflow["all"]["events"] or 1
        steps = np.array([cutflow[s]["events"] / total for s in COMMON_STEPS])
        x = np.arange(len(COMMON_STEPS))
        left.plot(x[steps > 0], steps[steps > 0], "o-", color=colour, label=name, markersize=4)
        left.plot(x[steps == 0], np.full((steps == 0).sum(), bottoms["left"]), "v", color=colour, clip_on=False)
        split = np.array([cutflow[s]["events"] / total for s in splits])
        positions = np.arange(len(splits)) + (i - (len(cutflows) - 1) / 2) * width
        right.bar(positions[split > 0], split[split > 0], width=width, color=colour, label=name)
        right.plot(positions[split == 0], np.full((split == 0).sum(), bottoms["right"]), "v", color=colour,
                   clip_on=False)
    for ax, labels, title, bottom in ((left, COMMON_STEPS, "Sequential selection steps", bottoms["left"]),
                                      (right, splits, "Regions and channels after the selection", bottoms["right"])):
        ax.set_yscale("log")
        ax.set_ylim(bottom, 30.0 if bottom < 1e-2 else 3.0)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=10)
        ax.set_xlabel(f"{title} (triangles: no event)", fontsize=11)
        ax.set_ylabel("Fraction of events")
    right.legend(fontsize=8, ncol=5, loc="upper right")
    experiment_label(left, _luminosity(output), simulation=True)
    experiment_label(right, _luminosity(output), simulation=True)
    return fig


def plot_cutflow(output: dict, path: Path) -> Path:
    """The cutflow figure as PNG and PDF."""
    return _save(figure_cutflow(output), path)


def _save(fig, path: Path) -> Path:
    """Write the figure as PNG (returned) and PDF beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _cell(value, fmt: str = ".2f") -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return "–" if value is None else (format(value, fmt) if isinstance(value, float) else str(value))


def _template_cell(row: CategoryRow) -> str:
    """A category row's template statistics over the data's, "(eff.)" where made with the efficiency in m_yy,
    "(control eff.)" with its control selection's."""
    if row.template_ratio is None:
        return "–"
    marks = {"own": "", CONTROL_EFFICIENCY: " (control eff.)"}
    return f"{row.template_ratio:.0f}{marks.get(row.template_method, ' (eff.)')}"


def _modelling_cell(row: CategoryRow) -> str:
    """A category row's modelling uncertainty in events, and its source."""
    return f"{row.modelling:.2f} ({row.modelling_source})" if row.modelling is not None else "–"


def comparison_table(fits_by_model: dict[str, FitResult]) -> list[str]:
    """Markdown rows: per category and model, function, chi2 probability, spurious signal, bias, Z."""
    from ..stats.fit_analysis import category_rows

    lines = ["| category | model | function | exponential passes | GoF prob. | zeta / S | zeta / dS | "
             "bias / allowance | template / data | modelling unc. | Z_exp | Z_exp (stat.) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = {label: {r.category: r for r in category_rows(result)} for label, result in fits_by_model.items()}
    categories = list(dict.fromkeys(c for by_category in rows.values() for c in by_category))
    for category in categories:
        for label, by_category in rows.items():
            r = by_category.get(category)
            if r is None:
                continue
            bias = f"{r.bias:.2f} / {r.allowance:.2f}" if r.bias is not None else "–"
            function = r.function + (" (fall-back)" if r.fallback else "")
            lines.append(f"| {category} | {label} | {function} | {_cell(r.exponential_passes)} | "
                         f"{_cell(r.p_value)} | {_cell(r.zeta_over_signal)} | "
                         f"{_cell(r.zeta_over_error)} | {bias} | {_template_cell(r)} | {_modelling_cell(r)} | "
                         f"{_cell(r.z)} | {_cell(r.z_statistical)} |")
    return lines


def _combined_lines(label: str, result: FitResult) -> list[str]:
    from ..stats.fit_analysis import pyhf_summary

    combined = result.combined
    lines = []
    if combined:
        c, stat = combined.all_uncertainties, combined.statistical_only
        lines.append(f"- **{label}**: expected significance {c.significance:.2f} sigma with every uncertainty "
                     f"({combined.statistical_and_modelling.significance:.2f} statistical and modelling, "
                     f"{stat.significance:.2f} statistical only), mu = {c.mu:.2f} +/- "
                     f"{c.mu_error:.2f}, expected 95% CL limit mu < {c.upper_limit:.2f} "
                     f"({stat.upper_limit:.2f} statistical only; {', '.join(combined.categories)})")
    if result.fallback:
        passing = combined.passing_categories if combined else None
        lines.append(f"  - fall-back function (none acceptable; kept with the smallest spurious signal as its width): "
                     f"{', '.join(result.fallback)}" + (f"; without them Z = {passing.significance:.2f}"
                                                        if passing else ""))
    pyhf_lines = pyhf_summary(result)
    if pyhf_lines:
        lines += [f"  - {line}" for line in pyhf_lines] + [f"  - {result.pyhf.note}"]
    return lines


def category_markdown(result: FitResult) -> list[str]:
    """One model's categories as a Markdown table."""
    from ..stats.fit_analysis import category_rows

    lines = ["| category | S (window) | B (window) | function | −2lnλ/ndf | p | zeta/S | zeta/dS | bias | allowance | "
             "template/data | modelling unc. | Z_exp | Z_exp (stat.) | mu_95 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in category_rows(result):
        function = r.function + (" (fall-back)" if r.fallback else "")
        cells = [_cell(r.signal), _cell(r.background), function, *map(_cell, (
            r.deviance_ndf, r.p_value, r.zeta_over_signal, r.zeta_over_error, r.bias, r.allowance))]
        lines.append(f"| {r.category} | " + " | ".join(cells) + f" | {_template_cell(r)} | {_modelling_cell(r)} | "
                     f"{_cell(r.z)} | {_cell(r.z_statistical)} | {_cell(r.upper_limit)} |")
    return lines


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c == "-")


def kernel_width(width: float) -> str:
    """An efficiency kernel's width in GeV, ``flat`` for the infinite one."""
    return f"{width:g}" if np.isfinite(width) else "flat"


def template_markdown(fits_by_model: dict[str, FitResult]) -> list[str]:
    """Per model and category: how the template was made, its statistics, the efficiency's kernel and its closure
    against the category's own events, per sample (the continuum MC datasets, the NTNI data)."""
    lines = ["| category | model | template | template / data (own shapes) | template / data (used) | "
             "(δS / Δ_MC)² | kernel, GeV, per sample | closure p, per sample | sidebands: template / data |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, result in fits_by_model.items():
        for record in result.categories:
            t = record.template
            if not t:
                continue
            kernels = ", ".join(f"{name} {kernel_width(width)}" for name, width in t.bandwidths.items()) or "–"
            closures = ", ".join(f"{name} {_cell(c.p_value if c else None, '.3f')}"
                                 for name, c in t.closure.items()) or "–"
            lines.append(f"| {record.category} | {label} | {t.method} | {t.own_effective_over_data:.1f} | "
                         f"{t.effective_over_data:.0f} | {_cell(t.signal_statistics_ratio, '.0f')} | {kernels} | "
                         f"{closures} | {t.template_sideband:.0f} / {t.data_sideband:.0f} |")
    return lines


def impact_markdown(label: str, result: FitResult) -> list[str]:
    """The nuisance parameters' impacts on mu of one model's combination."""
    from ..stats.fit_analysis import impact_table

    table = impact_table(result)
    if not table:
        return []
    refitted = any(r.impact_up is not None for r in result.combined.impacts)
    return [f"Impacts on μ, {label} ({'refitted' if refitted else 'linear'}"
            " for the largest; pull and constraint from the fit to the Asimov data):", "", *table, ""]


def _kept(metrics: TrainingMetrics) -> str:
    """The epoch each fold kept, marked where it met no flatness target (the flattest was kept)."""
    return ", ".join(f"{k.epoch}" + ("" if k.within_target else " (flattest)") for k in metrics.kept_epochs) or "–"


def classifier_markdown(training: TrainingView) -> list[str]:
    """The report's classifier section: the lambda choices, every result's figures and kept epochs, the ceilings."""
    lines = ["## Classifier", "", f"Rule for epochs (validation) and lambdas (out-of-fold): {training.chosen.rule}.",
             f"JSD binning: {training.jsd_binning}; out-of-fold metrics.", ""]
    for feature_set, choices in training.lambda_choice.items():
        for method, choice in choices.items():
            scan = "; ".join(f"λ {p.lam:g}: R50 {p.r50:.2f} at {p.ratio50:.2f} / {p.ratio80:.2f}" for p in choice.scan)
            lines.append(f"- {method} ({feature_set}): λ = {choice.chosen:g} chosen on seed {choice.seed} from "
                         f"{scan} (R50 at JSD50 / JSD80 over the floor)")
    lines += ["", "| features | method | lambda | seed | AUC | R50 | R80 | JSD50/floor | JSD80/floor | kept epoch per fold |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.feature_set} | {r.method} | {r.lam:g} | {r.seed} | {r.metrics.auc:.3f} | {r.metrics.r50:.1f} | "
              f"{r.metrics.r80:.2f} | {r.metrics.ratio50:.2f} | {r.metrics.ratio80:.2f} | {_kept(r.metrics)} |"
              for r in training.results]
    for r in first_seeds(training):
        c = r.metrics.ceiling
        if c:
            lines.append(f"| {r.feature_set} | ceiling (cross-fitted map) | – | {r.seed} | {c.auc:.3f} | {c.r50:.1f} | "
                         f"{c.r80:.2f} | {c.ratio50:.2f} | {c.ratio80:.2f} | – |")
    return lines + [""]


def write_report(out: Path, fits_by_model: dict[str, tuple[dict, FitResult]], training: TrainingView | None,
                 dump_dir: Path | None, window: MassWindow, comparison: list | None = None,
                 score_column: str = "score") -> Path:
    """All plots (PNG and PDF) plus report.md: the methods side by side first (``comparison``, rows of
    ``ttH_adv.stats.compare``), then the models' categories side by side, then each model's details.

    ``fits_by_model`` maps a label (e.g. decorrelated, unconstrained) to (processor output, fits.json);
    ``dump_dir``'s ``score_column`` gives the sculpting plot.
    """
    from ..stats.compare import comparison_markdown, comparison_summary

    out = Path(out)
    first_output = next(iter(fits_by_model.values()))[0]
    lumi = _luminosity(first_output)
    images = [("Cutflow", plot_cutflow(first_output, out / "cutflow.png"))]
    if training:
        images += [("Rejection vs sculpting (Pareto plane, out-of-fold scores)",
                    plot_pareto(training, out / "pareto.png", lumi)),
                   ("ROC curves (out-of-fold scores)", plot_roc(training, out / "roc.png", lumi)),
                   ("Score distributions of fold 0's network on its training and test events",
                    plot_scores(training, out / "scores.png", lumi))]
    if dump_dir is not None:
        images.append(("Background shape before and after the classifier cut (out-of-fold scores)",
                       plot_sculpting(dump_dir, window, out / "sculpting.png", lumi, score_column)))
    for label, (output, result) in fits_by_model.items():
        for record in result.fitted:
            name = f"fit_{label}_{record.category}.png"
            images.append((f"Fit of category {record.category}, {label} classifier",
                           plot_category_fit(output, record, window, out / name)))
    results = {label: result for label, (_, result) in fits_by_model.items()}
    sections = ["Methods side by side"] * bool(comparison) + ["Background modelling, model by model",
                                                               "Template shapes", *(f"Categories: {label}" for label in results)]
    sections += ["Classifier"] * bool(training) + ["Processing", "Plots"]
    lines = ["# ttH(yy) analysis report", "",
             "Every classifier score here is out-of-fold: each event is scored by the fold network that did not "
             "train on it.", "", f"m_yy fitted in {window.low:g}-{window.high:g} GeV with {window.blind_low:g}-"
             f"{window.blind_high:g} GeV blinded in data; goodness of fit in {window.gof_bin_width:g} GeV bins.", "",
             "## Contents", ""]
    lines += [f"- [{title}](#{_anchor(title)})" for title in sections] + [""]
    if comparison:
        lines += ["## Methods side by side", "", "Each trained result (every seed at its method's chosen λ) scored, "
                  "categorised, filled with every systematic variation and fitted alike; each figure the mean ± sd "
                  "over the seeds.  Z with every uncertainty: the systematics as constrained nuisance parameters and "
                  "the background-modelling uncertainty (a signal-shaped term per category, width the larger of its "
                  "spurious signal and toy bias); best mean first, and a row is above the next only where their "
                  "paired difference over the seeds exceeds twice its standard error.  R50, JSD50 and JSD80 over "
                  "the floor: out-of-fold, from training; R50 / ceiling: against the ceiling of the same features "
                  "at the row's own JSD50 / floor (the unconstrained network made flat in m_yy by cross-fitted "
                  "maps of several binnings).", "",
                  *comparison_markdown(comparison), "", comparison_summary(comparison), ""]
    lines += [f"## {sections[bool(comparison)]}", ""]
    lines += comparison_table(results) + [""]
    for label, result in results.items():
        lines += _combined_lines(label, result)
    lines += ["", "zeta = max(|S_spur| - 2 Delta_MC, 0), over the expected signal S and over the signal's statistical "
              "uncertainty dS; a function passes below 10% or 20%.  Bias: mean signal fitted to background-only toys "
              "from the template.  (eff.): template made from the inclusive shapes times the category's efficiency "
              "in m_yy; (control eff.): times its control selection's (the b-tag requirement dropped) and the "
              "category's share of it.", ""]
    for label, result in results.items():
        lines += impact_markdown(label, result)
    lines += ["## Template shapes", "", "A category keeps its own shapes where they carry `fits.template_min_statistics` "
              "x the data's statistics; elsewhere each sample's shape (each continuum MC dataset, the NTNI data) is "
              "the inclusive selection's times the sample's efficiency into the category in m_yy, a local-linear "
              "Gaussian-kernel smoothing of its own events over the inclusive ones (flat: one efficiency for the whole "
              "range, the inclusive shape itself).  The kernel is the widest of `fits.efficiency_bandwidths` whose leave-one-out likelihood is within `fits.efficiency_tolerance` of "
              "the best.  Where that still leaves the template short, the efficiency is the category's control "
              "selection's (the b-tag requirement dropped) times the category's flat share of it.  The yy fraction "
              "comes from the category's TI and NTNI sideband counts where a reducible (y+jet) MC gives the NTNI/TI "
              "ratios.  Closure: the category's own events against the efficiency times the inclusive shape, chi2 "
              f"in {window.gof_bin_width:g} GeV bins.  (δS / Δ_MC)²: "
              "the data's statistical uncertainty on the signal over the template's, squared (what the "
              "spurious-signal test sees of the template's statistics).", ""]
    lines += template_markdown(results) + [""]
    for label, result in results.items():
        lines += [f"## Categories: {label}", ""] + category_markdown(result) + [""]
        if result.fallback:
            lines += [f"Fall-back function (none acceptable): {', '.join(result.fallback)}.", ""]
    if training:
        lines += classifier_markdown(training)
    meta = first_output.get("metadata", {})
    lines += ["## Processing", "", f"Events read: {sum(meta.get('events_read', {}).values()):,}; files: "
              f"{len(meta.get('files_processed', []))}; skipped: {len(meta.get('files_skipped', []))}; "
              f"model: {(meta.get('model') or {}).get('path', 'none')} "
              f"({(meta.get('model') or {}).get('scores', '')})", "", "## Plots", ""]
    lines += [f"### {title}\n\n![{title}]({p.name}) ([PDF]({p.with_suffix('.pdf').name}))\n" for title, p in images]
    return write_text(out / "report.md", "\n".join(lines) + "\n")


@dataclass(frozen=True)
class TrainingView:
    """One or more training folders shown together: every result marked with its feature set, the first folder's
    choice and JSD binning, each folder's lambda choices."""

    results: list[TrainedEntry]
    chosen: Chosen
    lambda_choice: dict[str, dict[str, LambdaChoice]]   # feature set -> method -> choice
    jsd_binning: str


def load_training_results(*model_dirs: str | Path) -> TrainingView | None:
    """results.json of one or more training folders, shown together (None if there is none)."""
    summaries = [read_training_summary(d) for d in model_dirs]
    if not summaries:
        return None
    first = summaries[0]
    return TrainingView([replace(r, feature_set=s.feature_set) for s in summaries for r in s.results],
                        replace(first.chosen, feature_set=first.feature_set),
                        {s.feature_set: s.lambda_choice for s in summaries}, first.jsd_binning)
