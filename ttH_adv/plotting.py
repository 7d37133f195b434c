"""Plots (matplotlib + mplhep, the ``plot`` extra) and the Markdown report.

Every function writes one PNG and returns its path; inputs are the saved outputs of the other
steps (processor output, feature dump, training results, fit results), so plots can be redone
without rerunning anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .config import MassWindow
from .fit_analysis import category_inputs, category_table, chosen_background


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    plt.style.use(mplhep.style.ATLAS)
    return plt


def plot_category_fit(output: dict, record: dict, window: MassWindow, path: Path) -> Path:
    """m_yy of one category: TI data (sidebands), chosen background fit, expected signal, residuals."""
    plt = _pyplot()
    inputs = category_inputs(output, record["category"])
    edges = inputs["edges"]
    centres = 0.5 * (edges[:-1] + edges[1:])
    fit = record["sideband_fits"][record["chosen_family"]]
    background = chosen_background(record, edges)
    # 2.5 GeV bins for display
    group = 5
    c = centres.reshape(-1, group).mean(1)
    data = inputs["data_ti"].reshape(-1, group).sum(1)
    bkg = background.reshape(-1, group).sum(1)
    sig = (inputs["signal"] + inputs["resonant"]).reshape(-1, group).sum(1)
    side = ~window.in_window(c)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}, figsize=(8, 7))
    top.errorbar(c[side], data[side], yerr=np.sqrt(data[side]), fmt="ko", label="data (TI, sidebands)")
    top.plot(c, bkg, "b-", label=f"background fit ({record['chosen_family']})")
    top.plot(c, bkg + sig, "r--", label="background + Higgs (expected)")
    top.axvspan(*window.blind, color="grey", alpha=0.15, label="blinded")
    top.set_ylabel("events / 2.5 GeV")
    top.legend(fontsize=10)
    top.set_title(f"category {record['category']}: chi2/ndf = {fit['chi2_ndf']:.2f}", fontsize=12)
    residual = np.where(side & (bkg > 0), (data - bkg) / np.sqrt(np.maximum(bkg, 1e-9)), np.nan)
    bottom.axhline(0, color="b")
    bottom.plot(c, residual, "ko")
    bottom.set_ylabel("(data-fit)/sqrt(fit)")
    bottom.set_xlabel("m_yy [GeV]")
    return _save(fig, path)


def plot_sculpting(dump_dir: str | Path, window: MassWindow, path: Path) -> Path:
    """NTNI data m_yy shape before and after the classifier's 50%-signal-efficiency cut (normalised)."""
    import pyarrow.compute as pc

    from . import metrics
    from .dump import read_dump

    plt = _pyplot()
    table = read_dump(dump_dir, columns=["score", "mgg", "weight", "dataset", "region", "systematic"])
    table = table.filter(pc.equal(table["systematic"], "nominal")).to_pandas()
    sig = table[(table.dataset == "ttH") & (table.region == "TI")]
    bkg = table[(table.dataset == "data") & (table.region == "NTNI")]
    threshold = float(np.quantile(sig.score, 0.5))
    passed = bkg.score >= threshold
    binning = metrics.mass_binning(window)
    edges = binning.edges
    fig, ax = plt.subplots(figsize=(8, 6))
    for label, mass, style in (("all NTNI data", bkg.mgg, "k-"), ("pass (50% signal eff.)", bkg.mgg[passed], "r-"),
                               ("fail", bkg.mgg[~passed], "b--")):
        h, _ = np.histogram(mass, edges, density=True)
        ax.step(edges[:-1], h, style, where="post", label=label)
    sculpting = metrics.jsd_at_signal_efficiency(bkg.score.to_numpy(), bkg.mgg.to_numpy(), threshold, None, binning,
                                                 toys=20)
    ax.set_title(f"JSD(pass, fail) = {sculpting['jsd']:.2e} = {sculpting['ratio']:.1f} x floor", fontsize=12)
    ax.set_xlabel("m_yy [GeV]")
    ax.set_ylabel("normalised")
    ax.legend(fontsize=10)
    return _save(fig, path)


def plot_roc(results: dict, path: Path) -> Path:
    """Out-of-fold ROC curves of every trained method."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    for r in results["results"]:
        roc = r["metrics"].get("roc")
        if roc:
            ax.plot(roc["signal_efficiency"], roc["background_efficiency"], label=_label(r))
    ax.set_yscale("log")
    ax.set_xlabel("signal efficiency")
    ax.set_ylabel("background efficiency")
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_pareto(results: dict, path: Path) -> Path:
    """Rejection R50 against 1/JSD50 for every method, with the statistical floor."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    floors = []
    for r in results["results"]:
        m = r["metrics"]
        ax.plot(m["inverse_jsd50"], m["r50"], "o", label=_label(r))
        floors.append(m["floor50"])
    ax.axvline(1 / np.mean(floors), color="grey", ls="--", label="1 / floor (random selection)")
    ax.set_xscale("log")
    ax.set_xlabel(f"1 / JSD50  ({results.get('jsd_binning', '')})")
    ax.set_ylabel("R50 (1 / bkg. eff. at 50% sig. eff.)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_scores(results: dict, path: Path) -> Path:
    """Train/test score distributions of the chosen model (fold 0)."""
    plt = _pyplot()
    chosen = next(r for r in results["results"] if r["method"] == results["chosen"]["method"]
                  and r["lambda"] == results["chosen"]["lambda"])
    histograms = chosen["metrics"].get("score_histograms", {})
    fig, ax = plt.subplots(figsize=(7, 6))
    edges = np.linspace(0, 1, 41)
    for label, colour in (("signal", "r"), ("background", "b")):
        h = histograms.get(label)
        if h:
            ax.step(edges[:-1], h["train"], colour + "-", where="post", label=f"{label} train")
            ax.step(edges[:-1], h["test"], colour + ":", where="post", label=f"{label} test")
    ax.set_xlabel("score")
    ax.set_ylabel("normalised")
    ax.set_title(f"chosen: {_label(chosen)}", fontsize=12)
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_cutflow(output: dict, path: Path) -> Path:
    """Fraction of events after each cutflow step, per dataset."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 6))
    for name, cutflow in sorted(output["cutflow"].items()):
        steps = list(cutflow)
        total = cutflow["all"]["events"] or 1
        ax.plot(range(len(steps)), [cutflow[s]["events"] / total for s in steps], "o-", label=name)
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels(steps, rotation=60, fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("fraction of events")
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def _label(result: dict) -> str:
    return result["method"] + (f" (lambda {result['lambda']:g})" if result["method"] == "adversarial" else "")


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _cell(value, fmt: str = ".2f") -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return "–" if value is None else (format(value, fmt) if isinstance(value, float) else str(value))


def comparison_table(fits_by_model: dict[str, dict]) -> list[str]:
    """Markdown rows: per category and model, function, chi2 probability, spurious signal, bias, Z."""
    from .fit_analysis import category_rows

    lines = ["| category | model | function | exponential passes | chi2 prob. | zeta / S | zeta / dS | "
             "bias / allowance | template / data | Z_exp |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows = {label: {r["category"]: r for r in category_rows(result)} for label, result in fits_by_model.items()}
    categories = list(dict.fromkeys(c for by_category in rows.values() for c in by_category))
    for category in categories:
        for label, by_category in rows.items():
            r = by_category.get(category)
            if r is None:
                continue
            bias = f"{r['bias']:.2f} / {r['allowance']:.2f}" if "bias" in r else "–"
            ratio = f"{r['template_ratio']:.1f}{' (GP)' if r.get('smoothed') else ''}" if "template_ratio" in r else "–"
            lines.append(f"| {category} | {label} | {r['function']} | {_cell(r['exponential_passes'])} | "
                         f"{_cell(r.get('p_value'))} | {_cell(r.get('zeta_over_signal'))} | "
                         f"{_cell(r.get('zeta_over_error'))} | {bias} | {ratio} | {_cell(r.get('z'))} |")
    return lines


def _combined_lines(label: str, result: dict) -> list[str]:
    combined = result.get("combined") or {}
    lines = []
    if combined:
        lines.append(f"- **{label}**: expected significance {combined['significance']:.2f} sigma, "
                     f"mu = {combined['mu']:.2f} +/- {combined['mu_error']:.2f}, expected 95% CL limit "
                     f"mu < {combined['upper_limit']:.2f} ({', '.join(combined['categories'])})")
    if result.get("without_function"):
        lines.append(f"  - no acceptable background function, left out: {', '.join(result['without_function'])}")
    pyhf = result.get("pyhf") or {}
    if pyhf:
        p, d = pyhf["pyhf"], pyhf["relative_difference"]
        lines.append(f"  - pyhf (asymptotics) on the exported workspace: Z = {p['significance']:.2f} "
                     f"({d['significance']:+.1%}), mu < {p['upper_limit']:.2f} ({d['upper_limit']:+.1%}); {pyhf['note']}")
    return lines


def write_report(out: Path, fits_by_model: dict[str, tuple[dict, dict]], training: dict, dump_dir: Path | None,
                 window: MassWindow) -> Path:
    """All plots plus report.md: the models' categories side by side first, then each model's details.

    ``fits_by_model`` maps a label (e.g. decorrelated, unconstrained) to (processor output, fits.json).
    """
    out = Path(out)
    first_output = next(iter(fits_by_model.values()))[0]
    images = [("Cutflow", plot_cutflow(first_output, out / "cutflow.png"))]
    if training:
        images += [("Rejection vs sculpting (Pareto plane, out-of-fold scores)", plot_pareto(training, out / "pareto.png")),
                   ("ROC curves (out-of-fold scores)", plot_roc(training, out / "roc.png")),
                   ("Score distributions of fold 0's network on its training and test events", plot_scores(training, out / "scores.png"))]
    if dump_dir is not None:
        images.append(("Background shape before/after the classifier cut (out-of-fold scores)",
                       plot_sculpting(dump_dir, window, out / "sculpting.png")))
    for label, (output, result) in fits_by_model.items():
        for record in result["categories"]:
            if record.get("chosen_family"):
                name = f"fit_{label}_{record['category']}.png"
                images.append((f"{label}: category {record['category']}",
                               plot_category_fit(output, record, window, out / name)))
    results = {label: result for label, (_, result) in fits_by_model.items()}
    lines = ["# ttH(yy) analysis report", "",
             "Every classifier score here is out-of-fold: each event is scored by the fold network that did not "
             "train on it.", "", "## Background modelling, model by model", ""]
    lines += comparison_table(results) + [""]
    for label, result in results.items():
        lines += _combined_lines(label, result)
    lines += ["", "zeta = max(|S_spur| - 2 Delta_MC, 0), over the expected signal S and over the signal's statistical "
              "uncertainty dS; a function passes below 10% or 20%.  Bias: mean signal fitted to background-only toys "
              "from the template.  (GP): template smoothed by a Gaussian process.", ""]
    for label, result in results.items():
        lines += [f"## Categories: {label}", "", "```", category_table(result), "```", ""]
    if training:
        chosen = training["chosen"]
        lines += ["## Classifier", "", f"Chosen: {chosen['method']} (lambda {chosen['lambda']:g}); rule: {chosen['rule']}.",
                  f"JSD binning: {training.get('jsd_binning', '')}; out-of-fold metrics.", "", "```",
                  training["table"], "```", ""]
    meta = first_output.get("metadata", {})
    if meta:
        lines += ["## Processing", "", f"Events read: {sum(meta.get('events_read', {}).values()):,}; files: "
                  f"{len(meta.get('files_processed', []))}; skipped: {len(meta.get('files_skipped', []))}; "
                  f"model: {(meta.get('model') or {}).get('path', 'none')} "
                  f"({(meta.get('model') or {}).get('scores', '')})", ""]
    lines += ["## Plots", ""] + [f"### {title}\n\n![{title}]({p.name})\n" for title, p in images]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_training_results(model_dir: str | Path) -> dict:
    """results.json of a training folder ({} if absent)."""
    path = Path(model_dir) / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}
