"""``tth-adv fit``: per-category background choice, sideband fits, signal model, significance.

Per category of the processor output (TI region, nominal):

1. signal model: double-sided Crystal Ball fitted to ttH MC; the resonant background is the
   other Higgs modes (their MC histograms, fixed);
2. background function: the spurious-signal test on a background-only template, the NTNI data
   of the same category (Poisson fits to its raw counts, scaled to the TI sideband yield; seed
   000's data-driven background model); the passing family with the fewest parameters is chosen
   (if none passes, the one with the smallest spurious signal).  The template's event count is
   recorded: with few events the test has little power, which fits.json lets a reader judge;
3. sideband fit of TI data (120-130 GeV excluded) with every family, chi2/ndf and p-value;
4. Asimov data (blinded: chosen sideband fit + expected signal + resonant) or the data
   (``--unblind``); S+B fits give the expected significance per category and combined, and mu.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import fits
from .config import MassWindow

log = logging.getLogger(__name__)

RESONANT = ("ggH", "VBF", "WH", "ZH", "tH")
SIGNAL = ("ttH",)


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


def category_inputs(output: dict, category: str) -> dict[str, np.ndarray]:
    """The histograms one category's fits need."""
    h = output["histograms"]["mgg"]
    data_ti, _ = category_slice(h, ["data"], "TI", category)
    data_ntni, _ = category_slice(h, ["data"], "NTNI", category)
    signal, signal_var = category_slice(h, SIGNAL, "TI", category)
    resonant, _ = category_slice(h, RESONANT, "TI", category)
    return {"edges": h.axes["mgg"].edges, "data_ti": data_ti, "data_ntni": data_ntni, "signal": signal,
            "signal_variance": signal_var, "resonant": resonant}


def template_scale(inputs: dict[str, np.ndarray], window: MassWindow) -> float:
    """Factor bringing the NTNI data template to the TI sideband yield."""
    side = window.sideband_bins(inputs["edges"])
    ntni_side = inputs["data_ntni"][side].sum()
    return float(inputs["data_ti"][side].sum() / ntni_side) if ntni_side > 0 else 0.0


def choose_background(inputs: dict[str, np.ndarray], signal: fits.SignalModel, window: MassWindow,
                      families=fits.FAMILY_ORDER) -> tuple[str, list[dict]]:
    """Run the spurious-signal test for each family; return the chosen family and all results."""
    template, scale = inputs["data_ntni"], template_scale(inputs, window)
    edges = inputs["edges"]
    if template.sum() <= 0:
        return "exponential", [{"note": "no NTNI template events: exponential by default"}]
    # The signal's statistical uncertainty in data: a Poisson S+B fit to the template at the data's yield.
    _, data_error = fits.fit_s_plus_b_poisson(scale * template, edges, "exponential", signal.shape(edges))
    results = []
    for family in families:
        test = fits.spurious_signal(template, scale, edges, family, signal, signal.yield_, data_error,
                                    window.scan_masses())
        results.append({k: v for k, v in asdict(test).items() if k != "scan"}
                       | {"scan": test.scan, "template_events": float(template.sum())})
    passing = [r for r in results if r["passed"]]
    chosen = passing[0] if passing else min(results, key=lambda r: r["max_relative_to_expected"])
    return chosen["family"], results


def fit_category(output: dict, category: str, window: MassWindow, unblind: bool
                 ) -> tuple[dict, fits.CategoryModel | None]:
    """All fits of one category; returns its JSON record and its S+B model (None if empty)."""
    inputs = category_inputs(output, category)
    edges = inputs["edges"]
    side = window.sideband_bins(edges)
    record: dict = {"category": category, "data_ti_sideband": float(inputs["data_ti"][side].sum()),
                    "expected_signal": float(inputs["signal"].sum()), "resonant": float(inputs["resonant"].sum())}
    if record["data_ti_sideband"] < 1 or inputs["signal"].sum() <= 0:
        record["note"] = "no sideband data or no signal: not fitted"
        return record, None
    signal = fits.fit_signal(inputs["signal"], np.maximum(inputs["signal_variance"], 1e-12), edges, window)
    record["signal_model"] = {"params": signal.params, "chi2_ndf": signal.chi2_ndf}
    family, spurious = choose_background(inputs, signal, window)
    record["spurious_signal"] = spurious
    record["chosen_family"] = family
    sideband = {name: fits.fit_background(inputs["data_ti"], edges, name, side, window.gof_bin_width)
                for name in fits.FAMILY_ORDER}
    record["sideband_fits"] = {name: {"params": f.params, "norm": f.norm, "chi2": f.chi2, "ndf": f.ndf,
                                      "chi2_ndf": f.chi2_ndf, "p_value": f.p_value, "converged": f.converged}
                               for name, f in sideband.items()}
    chosen = sideband[family]
    background = chosen.expected(edges)
    record["background_in_window"] = float(background[~side].sum())
    record["signal_in_window"] = float(inputs["signal"][~side].sum())
    observed = inputs["data_ti"] if unblind else fits.asimov(background, inputs["signal"], inputs["resonant"])
    model = fits.CategoryModel(category, observed, inputs["signal"], inputs["resonant"], family, chosen)
    record.update({f"expected_{k}": v for k, v in fits.expected_significance([model], edges).items()})
    return record, model


def run_fits(output: dict, window: MassWindow, unblind: bool = False) -> dict:
    """Fit every category and all together, in the configured mass window."""
    h = output["histograms"]["mgg"]
    window.check_edges(h.axes["mgg"].edges, "the histograms")
    records, models = [], []
    for category in h.axes["category"]:
        record, model = fit_category(output, category, window, unblind)
        records.append(record)
        if model is not None:
            models.append(model)
        log.info("category %s: %s", category, record.get("chosen_family", record.get("note")))
    combined = fits.expected_significance(models, h.axes["mgg"].edges) if models else {}
    return {"categories": records, "combined": combined, "unblinded": unblind,
            "conventions": {"chi2_bin_width_gev": window.gof_bin_width, "blind_window": list(window.blind),
                            "mass_window": [window.low, window.high], "signal_scan": list(window.signal_scan),
                            "signal": list(SIGNAL), "resonant": list(RESONANT),
                            "template": "NTNI data in the category scaled to the TI sideband yield",
                            "family_order": list(fits.FAMILY_ORDER)}}


def category_table(result: dict) -> str:
    """The table a physicist reads first: yields, function, chi2/ndf, spurious signal, significance."""
    lines = [f"{'category':<10}{'S(win)':>8}{'B(win)':>9}{'function':>12}{'chi2/ndf':>9}{'p':>7}"
             f"{'spur/S':>8}{'spur/dS':>8}{'Z_exp':>7}{'mu':>7}{'dmu':>7}"]
    for r in result["categories"]:
        if "chosen_family" not in r:
            lines.append(f"{r['category']:<10}  {r.get('note', '')}")
            continue
        fam = r["chosen_family"]
        side = r["sideband_fits"][fam]
        spur = next((s for s in r["spurious_signal"] if s.get("family") == fam), {})
        lines.append(f"{r['category']:<10}{r['signal_in_window']:>8.2f}{r['background_in_window']:>9.1f}{fam:>12}"
                     f"{side['chi2_ndf']:>9.2f}{side['p_value']:>7.2f}{spur.get('max_relative_to_expected', float('nan')):>8.2f}"
                     f"{spur.get('max_relative_to_error', float('nan')):>8.2f}{r['expected_significance']:>7.2f}"
                     f"{r['expected_mu']:>7.2f}{r['expected_mu_error']:>7.2f}")
    c = result.get("combined") or {}
    if c:
        lines.append(f"{'combined':<10}{'':>62}{c['significance']:>7.2f}{c['mu']:>7.2f}{c['mu_error']:>7.2f}")
    return "\n".join(lines)


def write_fit_results(result: dict, out_dir: str | Path) -> Path:
    """fits.json in the output folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "fits.json"
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return path
