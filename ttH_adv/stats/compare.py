"""Methods side by side in the final metric (``tth-adv compare``): the table and its inputs.

Every trained result of one or more training folders (``results.json``: one feature set each)
is scored, categorised, filled and fitted by the stage functions (``ttH_adv.app.stages.compare``);
this module reads the trained results and turns their fits into one table per result:
method, feature set, lambda, R50 and JSD50/floor (out-of-fold, from training), R50 as a fraction
of the ceiling of the same feature set (the ``ddt`` result's network made flat by cross-fitted
maps, ``training.run.fixed_efficiency_ceiling``), the categories with an acceptable function, the exponential's
spurious-signal pass rate, the worst |bias| / allowance, and the expected significance without
and with the background-modelling nuisance, with mu_95.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFileError
from .fit_analysis import WITH_MODELLING, WITHOUT_MODELLING

CEILING_METHOD = "ddt"  # its result carries the ceiling: the unconstrained score made flat in m_yy


@dataclass(frozen=True)
class TrainedResult:
    """One trained (method, lambda) of a training folder, and its exported k-fold model."""

    label: str          # unique in a comparison: "<feature set>.<result>"
    method: str
    lam: float
    feature_set: str
    model: Path         # MODELDIR/models/<result>.onnx
    metrics: dict

    @property
    def takes_lambda(self) -> bool:
        """Whether lambda means anything for this result's method."""
        return self.lam != 0.0


def trained_results(model_dirs: list[str | Path]) -> list[TrainedResult]:
    """Every trained result of the training folders, labelled by feature set and result name."""
    found = []
    for folder in map(Path, model_dirs):
        path = folder / "results.json"
        if not path.is_file():
            raise InputFileError(f"{folder} is not a training folder: no results.json (make it with tth-adv train)",
                                 path=str(folder))
        summary = json.loads(path.read_text())
        for r in summary["results"]:
            model = folder / "models" / Path(r["model"]).name
            if not model.is_file():
                raise InputFileError(f"{path} lists {model.name}, which is not in {folder / 'models'}", path=str(path))
            found.append(TrainedResult(f"{summary['feature_set']}.{model.stem}", r["method"], float(r["lambda"]),
                                       summary["feature_set"], model, r["metrics"]))
    labels = [r.label for r in found]
    if len(set(labels)) < len(labels):  # the same feature set and result in two folders: name them by folder
        found = [TrainedResult(f"{r.model.parent.parent.name}.{r.label}", r.method, r.lam, r.feature_set, r.model,
                               r.metrics) for r in found]
    return found


def _ceiling(result: TrainedResult, results: list[TrainedResult]) -> float | None:
    """The ceiling's R50 of the same feature set, if a ddt result there carries one."""
    return next((r.metrics["ceiling"]["r50"] for r in results if r.method == CEILING_METHOD
                 and r.feature_set == result.feature_set and "ceiling" in r.metrics), None)


def comparison_row(result: TrainedResult, results: list[TrainedResult], fit: dict, categories: dict) -> dict:
    """One result's line of the comparison table."""
    records = fit["categories"]
    fitted = [r for r in records if r.get("chosen_family")]
    exponential = [next(s for s in r["spurious_signal"] if s["family"] == "exponential") for r in records
                   if r.get("spurious_signal")]
    ceiling = _ceiling(result, results)
    combined = fit.get("combined") or {}
    # each channel's Z, the quadrature sum of its categories' (equal to the combined fit's to 1e-3 here)
    by_channel = {channel: math.sqrt(sum(r["expected"][WITH_MODELLING]["significance"] ** 2 for r in fitted
                                         if r["category"].startswith(f"{channel}_") or r["category"] == channel))
                  for channel in categories["categories"]}
    worst = max(fitted, key=lambda r: abs(r["bias"]["mean_signal"]) / r["bias"]["allowance"], default=None)
    return {
        "label": result.label, "method": result.method, "feature_set": result.feature_set,
        "lambda": result.lam if result.takes_lambda else None,
        "r50": result.metrics["r50"], "jsd50_over_floor": result.metrics["ratio50"],
        "r50_over_ceiling": result.metrics["r50"] / ceiling if ceiling else None,
        "categories": len(records), "categories_requested": sum(
            categories.get("fewer_than_requested", {}).get(c, {}).get("requested", len(b))
            for c, b in categories["categories"].items()),
        "with_function": len(fitted), "exponential_passes": sum(s["passed"] for s in exponential),
        "templates_with_power": sum(1 for r in records if r.get("template") and not r["template"]["smoothed"]),
        "worst_bias_over_allowance": abs(worst["bias"]["mean_signal"]) / worst["bias"]["allowance"] if worst else None,
        "worst_bias_category": worst["category"] if worst else None,
        "z_without_modelling": combined.get(WITHOUT_MODELLING, {}).get("significance", 0.0),
        "z": combined.get(WITH_MODELLING, {}).get("significance", 0.0), "z_by_channel": by_channel,
        "mu_95": combined.get(WITH_MODELLING, {}).get("upper_limit"),
    }


def _number(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def comparison_markdown(rows: list[dict]) -> list[str]:
    """The comparison as a Markdown table, best expected Z (with the modelling nuisance) first."""
    lines = ["| method | features | λ | R50 | JSD50 / floor | R50 / ceiling | categories with a function | "
             "templates ≥ min. statistics | exponential passes | worst \\|bias\\| / allowance | Z (stat. only) | "
             "**Z** | Z by channel | μ95 |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["z"]):
        asked = f" (of {r['categories_requested']} asked)" if r["categories_requested"] != r["categories"] else ""
        worst = (f"{r['worst_bias_over_allowance']:.2f} ({r['worst_bias_category']})"
                 if r["worst_bias_over_allowance"] is not None else "–")
        lines.append(f"| {r['method']} | {r['feature_set']} | {_number(r['lambda'], 'g')} | {r['r50']:.1f} | "
                     f"{r['jsd50_over_floor']:.1f} | {_number(r['r50_over_ceiling'], '.2f')} | "
                     f"{r['with_function']} / {r['categories']}{asked} | {r['templates_with_power']} / {r['categories']} | "
                     f"{r['exponential_passes']} / {r['categories']} | "
                     f"{worst} | {r['z_without_modelling']:.2f} | **{r['z']:.2f}** | "
                     f"{', '.join(f'{c} {z:.2f}' for c, z in r['z_by_channel'].items())} | {_number(r['mu_95'], '.2f')} |")
    return lines


def comparison_summary(rows: list[dict]) -> str:
    """One sentence: which result gives the best expected Z with the modelling nuisance, and by how much."""
    ranked = sorted(rows, key=lambda r: -r["z"])
    best = ranked[0]
    text = (f"Best expected significance with the background-modelling uncertainty: {best['method']} "
            f"({best['feature_set']} features), Z = {best['z']:.2f}")
    if len(ranked) > 1:
        second = ranked[1]
        gain = f"{best['z'] / second['z'] - 1:+.0%}" if second["z"] > 0 else "where the next has none"
        text += f", {gain} over the next, {second['method']} ({second['feature_set']} features, Z = {second['z']:.2f})"
    unconstrained = [r for r in rows if r["method"] == "classifier" and r["feature_set"] == best["feature_set"]]
    if unconstrained and unconstrained[0] is not best:
        u = unconstrained[0]
        text += (f"; the unconstrained classifier on the same features reaches Z = {u['z']:.2f} "
                 f"({u['z_without_modelling']:.2f} without the modelling uncertainty)")
    return text + "."


def write_comparison(rows: list[dict], out: str | Path) -> tuple[Path, Path]:
    """comparison.json and comparison.md in ``out``."""
    from ..atomic import write_text

    out = Path(out)
    md = "\n".join(["# Methods side by side", "", *comparison_markdown(rows), "", comparison_summary(rows), ""])
    return (write_text(out / "comparison.json", json.dumps({"rows": rows, "summary": comparison_summary(rows)},
                                                           indent=1) + "\n"),
            write_text(out / "comparison.md", md))
