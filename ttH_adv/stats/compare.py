"""Methods side by side in the final metric (``tth-adv compare``): rows over seeds, separation, the ceiling.

Every trained result of one or more training folders (``results.json``: one feature set each) that
is in the comparison -- every seed of every method at its chosen lambda -- is scored, categorised,
filled and fitted by the stage functions (``ttH_adv.app.stages.compare``).  This module turns
their fits into one row per (feature set, method, lambda): R50, JSD50/floor and JSD80/floor
(out-of-fold, from training) and the expected significance Z with every uncertainty, each as the
mean +/- sd over the seeds.

* Separation.  Rows are ranked by mean Z; a row is above the next only where their paired
  difference over the seeds they share exceeds twice its standard error; otherwise the table says
  "not separated" (and with one seed nothing is separated).
* The ceiling at matched flatness.  The unconstrained network of the same feature set, made flat
  in m_yy by cross-fitted maps of several binnings, traces R50 against JSD50/floor
  (``ceiling_curve`` of its training); R50 / ceiling divides a row's R50 by the ceiling's at the
  row's own flatness, read off that curve (``r50_at_flatness``).  A row flatter than the flattest
  map is divided by that map's R50 (an upper bound of the ceiling there: the ratio is a lower
  bound, marked ≥).
* R50 at matched flatness.  A method trained at several lambdas (its scan) gives R50 at
  JSD50/floor = 1.2 and 1.5 by interpolation along the scan, beside the ceiling's at the same
  flatness.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..documents import read_document
from ..errors import InputFileError
from .fit_analysis import ALL, PASSING, STAT_MODELLING, STATISTICAL

UNCONSTRAINED = "classifier"   # its networks, made flat, are the ceiling of every method on the same features
MATCHED_FLATNESS = (1.2, 1.5)  # JSD50/floor at which R50 is compared along a lambda scan
SEPARATION = 2.0               # paired difference over seeds, in standard errors, for one row to rank above the next


@dataclass(frozen=True)
class TrainedResult:
    """One trained (method, lambda, seed) of a training folder, and its exported k-fold model."""

    label: str          # unique in a comparison: "<feature set>.<result>"
    method: str
    lam: float
    feature_set: str
    model: Path         # MODELDIR/models/<result>.onnx
    metrics: dict
    seed: int = 1
    in_comparison: bool = True  # False: a lambda of a scan other than the chosen one (training figures only)

    @property
    def takes_lambda(self) -> bool:
        """Whether lambda means anything for this result's method."""
        return self.lam != 0.0

    @property
    def row_key(self) -> tuple[str, str, float]:
        """The comparison row it belongs to: (feature set, method, lambda)."""
        return (self.feature_set, self.method, self.lam)


def read_training_summary(folder: str | Path) -> dict:
    """results.json of a training folder (``tth-adv train --out``); one error naming it where it is missing or
    not one."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise InputFileError(f"{folder} is not a training folder: no results.json (make it with tth-adv train)",
                             path=str(folder))
    return read_document(path, "a training summary (tth-adv train writes results.json)",
                         required=["results", "feature_set", "chosen"], error=InputFileError)


def trained_results(model_dirs: list[str | Path]) -> list[TrainedResult]:
    """Every trained result of the training folders, labelled by feature set and result name."""
    found = []
    for folder in map(Path, model_dirs):
        path = folder / "results.json"
        summary = read_training_summary(folder)
        for r in summary["results"]:
            model = folder / "models" / Path(r["model"]).name
            if not model.is_file():
                raise InputFileError(f"{path} lists {model.name}, which is not in {folder / 'models'}", path=str(path))
            found.append(TrainedResult(f"{summary['feature_set']}.{model.stem}", r["method"], float(r["lambda"]),
                                       summary["feature_set"], model, r["metrics"], int(r.get("seed", 1)),
                                       bool(r.get("in_comparison", True))))
    labels = [r.label for r in found]
    if len(set(labels)) < len(labels):  # the same feature set and result in two folders: name them by folder
        found = [replace(r, label=f"{r.model.parent.parent.name}.{r.label}") for r in found]
    return found


def compared(results: list[TrainedResult]) -> list[TrainedResult]:
    """The results the comparison scores and fits: every seed at each method's chosen lambda."""
    return [r for r in results if r.in_comparison]


# --------------------------------------------------------------------------- flatness


def r50_at_flatness(points: list[tuple[float, float]], flatness: float, clamp: bool = False) -> float | None:
    """R50 at a JSD50/floor, interpolated linearly between (JSD50/floor, R50) points of a scan; outside their range
    None, or with ``clamp`` the nearest end's R50."""
    if not points:
        return None
    ordered = sorted(points)
    x, y = np.array([p[0] for p in ordered]), np.array([p[1] for p in ordered])
    if flatness < x[0] or flatness > x[-1]:
        return float(y[0] if flatness < x[0] else y[-1]) if clamp else None
    return float(np.interp(flatness, x, y))


def ceiling_points(result: TrainedResult) -> list[tuple[float, float]]:
    """The (JSD50/floor, R50) points of an unconstrained result's ceiling curve."""
    return [(p["ratio50"], p["r50"]) for p in result.metrics.get("ceiling_curve", [])]


def ceiling_for(result: TrainedResult, results: list[TrainedResult]) -> TrainedResult | None:
    """The unconstrained result of the same feature set (the same seed where there is one) that carries a ceiling."""
    candidates = [r for r in results if r.method == UNCONSTRAINED and r.feature_set == result.feature_set
                  and r.metrics.get("ceiling_curve")]
    return next((r for r in candidates if r.seed == result.seed), candidates[0] if candidates else None)


def r50_over_ceiling(result: TrainedResult, results: list[TrainedResult]) -> tuple[float | None, bool]:
    """(R50 / the ceiling's R50 at the same JSD50/floor, whether the row is flatter than any map so the ratio is a
    lower bound)."""
    ceiling = ceiling_for(result, results)
    points = ceiling_points(ceiling) if ceiling else []
    if not points:
        return None, False
    flatness = result.metrics["ratio50"]
    at = r50_at_flatness(points, flatness, clamp=True)
    return (result.metrics["r50"] / at if at else None), flatness < min(p[0] for p in points)


def matched_flatness(results: list[TrainedResult]) -> dict[tuple[str, str], dict]:
    """Per (feature set, method) with a lambda scan: R50 at each ``MATCHED_FLATNESS`` along the scan (the mean over
    the seeds at each lambda) and the ceiling's R50 there."""
    found = {}
    for key in sorted({(r.feature_set, r.method) for r in results if r.takes_lambda}):
        scan = [r for r in results if (r.feature_set, r.method) == key]
        lambdas = sorted({r.lam for r in scan})
        if len(lambdas) < 2:
            continue
        points = [(float(np.mean([r.metrics["ratio50"] for r in scan if r.lam == lam])),
                   float(np.mean([r.metrics["r50"] for r in scan if r.lam == lam]))) for lam in lambdas]
        ceiling = ceiling_for(scan[0], results)
        found[key] = {"lambdas": lambdas, "points": points,
                      **{f"r50_at_{f:g}": r50_at_flatness(points, f) for f in MATCHED_FLATNESS},
                      **{f"ceiling_at_{f:g}": r50_at_flatness(ceiling_points(ceiling), f, clamp=True) if ceiling
                         else None for f in MATCHED_FLATNESS}}
    return found


# --------------------------------------------------------------------------- rows


def comparison_row(result: TrainedResult, results: list[TrainedResult], fit: dict, categories: dict) -> dict:
    """One result's (one seed's) line of the comparison."""
    records = fit["categories"]
    fitted = [r for r in records if r.get("chosen_family")]
    exponential = [next(s for s in r["spurious_signal"] if s["family"] == "exponential") for r in records
                   if r.get("spurious_signal")]
    combined = fit.get("combined") or {}
    # each channel's Z, the quadrature sum of its categories'
    by_channel = {channel: math.sqrt(sum(r["expected"][ALL]["significance"] ** 2 for r in fitted
                                         if r["category"].startswith(f"{channel}_") or r["category"] == channel))
                  for channel in categories["categories"]}
    worst = max(fitted, key=lambda r: abs(r["bias"]["mean_signal"]) / r["bias"]["allowance"], default=None)
    minimum = fit["conventions"]["fits"]["template_min_statistics"]
    over_ceiling, lower_bound = r50_over_ceiling(result, results)
    return {
        "label": result.label, "method": result.method, "feature_set": result.feature_set, "seed": result.seed,
        "lambda": result.lam if result.takes_lambda else None,
        "r50": result.metrics["r50"], "jsd50_over_floor": result.metrics["ratio50"],
        "jsd80_over_floor": result.metrics["ratio80"],
        "r50_over_ceiling": over_ceiling, "ceiling_lower_bound": lower_bound,
        "kept_epochs": result.metrics.get("kept_epochs", []),
        "categories": len(records), "categories_requested": sum(
            categories.get("fewer_than_requested", {}).get(c, {}).get("requested", len(b))
            for c, b in categories["categories"].items()),
        "with_function": len([r for r in fitted if not r.get("fallback")]), "fallback": len(fit.get("fallback", [])),
        "exponential_passes": sum(s["passed"] for s in exponential),
        "templates_with_power": sum(1 for r in records if r.get("template")
                                    and r["template"]["effective_over_data"] >= minimum),
        "template_ratios": [r["template"]["effective_over_data"] for r in records if r.get("template")],
        "zeta_positive": sum(1 for r in records for s in r.get("spurious_signal", [])
                             if s["family"] == r.get("chosen_family") and s["max_zeta"] > 0),
        "worst_bias_over_allowance": abs(worst["bias"]["mean_signal"]) / worst["bias"]["allowance"] if worst else None,
        "worst_bias_category": worst["category"] if worst else None,
        "z_statistical": combined.get(STATISTICAL, {}).get("significance", 0.0),
        "z_statistical_and_modelling": combined.get(STAT_MODELLING, {}).get("significance", 0.0),
        "z": combined.get(ALL, {}).get("significance", 0.0), "z_by_channel": by_channel,
        "z_passing": (combined.get(PASSING) or {}).get("significance"),
        "mu_95": combined.get(ALL, {}).get("upper_limit"),
    }


SPREAD_KEYS = ("r50", "jsd50_over_floor", "jsd80_over_floor", "r50_over_ceiling", "z", "z_statistical_and_modelling",
               "z_statistical", "z_passing", "mu_95")


def _spread(values: list) -> dict[str, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (feature set, method, lambda) over its seeds: each figure's mean, sd and the per-seed values,
    ranked by mean Z with the separation from the next row (``separated``, the paired difference in standard
    errors)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["feature_set"], row["method"], row["lambda"]), []).append(row)
    table = []
    for (feature_set, method, lam), members in groups.items():
        members = sorted(members, key=lambda r: r["seed"])
        entry = {"feature_set": feature_set, "method": method, "lambda": lam, "seeds": [r["seed"] for r in members],
                 "per_seed": {key: [r.get(key) for r in members] for key in SPREAD_KEYS},
                 **{key: _spread([r.get(key) for r in members]) for key in SPREAD_KEYS},
                 "ceiling_lower_bound": any(r["ceiling_lower_bound"] for r in members),
                 "kept_epochs": [e for r in members for e in r["kept_epochs"]],
                 **{key: members[0][key] for key in ("categories", "categories_requested")},
                 **{key: _spread([r[key] for r in members]) for key in ("with_function", "fallback",
                                                                         "exponential_passes", "templates_with_power",
                                                                         "zeta_positive")},
                 "template_ratio_range": [min(v for r in members for v in r["template_ratios"]),
                                          max(v for r in members for v in r["template_ratios"])]
                 if any(r["template_ratios"] for r in members) else None}
        table.append(entry)
    table.sort(key=lambda e: -e["z"]["mean"])
    for above, below in zip(table, table[1:], strict=False):
        above["next"] = separation(above, below)
    if table:
        table[-1]["next"] = None
    return table


def separation(above: dict, below: dict) -> dict:
    """The paired difference of Z between two rows over the seeds they share: mean, standard error, and whether it
    exceeds ``SEPARATION`` standard errors."""
    shared = sorted(set(above["seeds"]) & set(below["seeds"]))
    za = dict(zip(above["seeds"], above["per_seed"]["z"], strict=True))
    zb = dict(zip(below["seeds"], below["per_seed"]["z"], strict=True))
    d = np.array([za[s] - zb[s] for s in shared])
    if len(d) < 2:
        return {"seeds": len(d), "difference": float(d.mean()) if len(d) else None, "error": None, "separated": False}
    error = float(d.std(ddof=1) / math.sqrt(len(d)))
    mean = float(d.mean())
    return {"seeds": len(d), "difference": mean, "error": error,
            "separated": bool(error == 0 and mean > 0 or error > 0 and mean > SEPARATION * error)}


# --------------------------------------------------------------------------- the table


def _number(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _mean_sd(spread: dict | None, fmt: str) -> str:
    if not spread:
        return "–"
    return f"{spread['mean']:{fmt}} ± {spread['sd']:{fmt}}" if spread["n"] > 1 else f"{spread['mean']:{fmt}}"


def _label(entry: dict) -> str:
    return f"{entry['method']} ({entry['feature_set']})"


def comparison_markdown(table: list[dict]) -> list[str]:
    """The comparison as a Markdown table, best mean Z (every uncertainty) first, each figure mean ± sd over seeds."""
    lines = ["| method | features | λ | seeds | R50 | JSD50 / floor | JSD80 / floor | R50 / ceiling | "
             "categories: function / fall-back | template / data | Z (stat.) | Z (stat. + modelling) | **Z** | "
             "Z without fall-backs | μ95 | against the next row |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        asked = f" (of {e['categories_requested']} asked)" if e["categories_requested"] != e["categories"] else ""
        ceiling = ("≥ " if e["ceiling_lower_bound"] else "") + _mean_sd(e["r50_over_ceiling"], ".2f")
        ratios = e["template_ratio_range"]
        nxt = e.get("next")
        if nxt is None:
            versus = "–"
        elif nxt["error"] is None:
            versus = "not separated (one seed)"
        else:
            versus = (f"{'separated' if nxt['separated'] else 'not separated'}: "
                      f"ΔZ = {nxt['difference']:+.2f} ± {nxt['error']:.2f}")
        lines.append(f"| {e['method']} | {e['feature_set']} | {_number(e['lambda'], 'g')} | {len(e['seeds'])} | "
                     f"{_mean_sd(e['r50'], '.1f')} | {_mean_sd(e['jsd50_over_floor'], '.2f')} | "
                     f"{_mean_sd(e['jsd80_over_floor'], '.2f')} | {ceiling} | "
                     f"{e['with_function']['mean']:.1f} / {e['fallback']['mean']:.1f} of {e['categories']}{asked} | "
                     f"{f'{ratios[0]:.0f}–{ratios[1]:.0f}' if ratios else '–'} | {_mean_sd(e['z_statistical'], '.2f')} | "
                     f"{_mean_sd(e['z_statistical_and_modelling'], '.2f')} | **{_mean_sd(e['z'], '.2f')}** | "
                     f"{_mean_sd(e['z_passing'], '.2f')} | {_mean_sd(e['mu_95'], '.2f')} | {versus} |")
    return lines


def matched_flatness_markdown(found: dict[tuple[str, str], dict]) -> list[str]:
    """R50 at matched flatness along each lambda scan, beside the ceiling's."""
    if not found:
        return []
    columns = " | ".join(f"R50 at {f:g} | ceiling at {f:g}" for f in MATCHED_FLATNESS)
    lines = [f"| method | features | λ scanned | {columns} |", "|---|---|---|" + "---|---|" * len(MATCHED_FLATNESS)]
    for (feature_set, method), m in found.items():
        cells = " | ".join(f"{_number(m[f'r50_at_{f:g}'], '.2f')} | {_number(m[f'ceiling_at_{f:g}'], '.2f')}"
                           for f in MATCHED_FLATNESS)
        lines.append(f"| {method} | {feature_set} | {', '.join(f'{x:g}' for x in m['lambdas'])} | {cells} |")
    return lines


def comparison_summary(table: list[dict]) -> str:
    """One sentence: the best row by mean Z and whether it is separated from the next, with the seed spread."""
    if not table:
        return "No result to compare."
    best = table[0]
    text = (f"Best mean expected significance with every uncertainty: {_label(best)}, Z = {_mean_sd(best['z'], '.2f')} "
            f"over {len(best['seeds'])} seed(s)")
    nxt = best.get("next")
    if nxt is not None and len(table) > 1:
        second = table[1]
        if nxt["separated"]:
            text += (f", separated from {_label(second)} (Z = {_mean_sd(second['z'], '.2f')}; paired ΔZ = "
                     f"{nxt['difference']:+.2f} ± {nxt['error']:.2f})")
        else:
            detail = (f"paired ΔZ = {nxt['difference']:+.2f} ± {nxt['error']:.2f}" if nxt["error"] is not None
                      else "one seed")
            text += (f", but not separated from {_label(second)} (Z = {_mean_sd(second['z'], '.2f')}; {detail}): "
                     "no winner is named")
    unconstrained = [e for e in table if e["method"] == UNCONSTRAINED and e["feature_set"] == best["feature_set"]]
    if unconstrained and unconstrained[0] is not best:
        u = unconstrained[0]
        text += (f"; the unconstrained classifier on the same features reaches Z = {_mean_sd(u['z'], '.2f')} "
                 f"({_mean_sd(u['z_statistical'], '.2f')} statistical only)")
    return text + "."


def write_comparison(rows: list[dict], out: str | Path, results: list[TrainedResult] | None = None) -> tuple[Path, Path]:
    """comparison.json (per-seed rows, the aggregated table, matched flatness) and comparison.md in ``out``."""
    from ..atomic import write_text

    out = Path(out)
    table = aggregate(rows)
    matched = matched_flatness(results or [])
    summary = comparison_summary(table)
    md = ["# Methods side by side", "", *comparison_markdown(table), "", summary, ""]
    if matched:
        md += ["## R50 at matched flatness (along each λ scan)", "", *matched_flatness_markdown(matched), ""]
    data = {"rows": rows, "table": table, "summary": summary,
            "matched_flatness": [{"feature_set": k[0], "method": k[1], **v} for k, v in matched.items()]}
    return (write_text(out / COMPARISON_FILE, json.dumps(data, indent=1, default=float) + "\n"),
            write_text(out / "comparison.md", "\n".join(md)))


COMPARISON_FILE = "comparison.json"


def read_comparison(folder: str | Path) -> dict:
    """comparison.json of a ``tth-adv compare`` folder; one error naming it where it is missing or not one."""
    return read_document(Path(folder) / COMPARISON_FILE, "the comparison of tth-adv compare",
                         required=["rows", "table"], error=InputFileError)
