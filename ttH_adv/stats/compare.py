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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import InputFileError
from ..records import Record, read_record
from .categorize import CategoriesFile
from .fit_results import CategoryFit, FitResult
from .training_results import KeptEpoch, TrainingMetrics, TrainingSummary

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
    metrics: TrainingMetrics
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


def read_training_summary(folder: str | Path) -> TrainingSummary:
    """results.json of a training folder (``tth-adv train --out``); one error naming it where it is missing or
    not one."""
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise InputFileError(f"{folder} is not a training folder: no results.json (make it with tth-adv train)",
                             path=str(folder))
    return read_record(TrainingSummary, path, "a training summary (tth-adv train writes results.json)",
                       "train again", required=["results", "feature_set", "chosen"])


def trained_results(model_dirs: list[str | Path]) -> list[TrainedResult]:
    """Every trained result of the training folders, labelled by feature set and result name."""
    found = []
    for folder in map(Path, model_dirs):
        path = folder / "results.json"
        summary = read_training_summary(folder)
        for r in summary.results:
            model = folder / "models" / Path(r.model).name
            if not model.is_file():
                raise InputFileError(f"{path} lists {model.name}, which is not in {folder / 'models'}", path=str(path))
            found.append(TrainedResult(f"{summary.feature_set}.{model.stem}", r.method, float(r.lam),
                                       summary.feature_set, model, r.metrics, r.seed, r.in_comparison))
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
    return [(p.ratio50, p.r50) for p in result.metrics.ceiling_curve]


def ceiling_for(result: TrainedResult, results: list[TrainedResult]) -> TrainedResult | None:
    """The unconstrained result of the same feature set (the same seed where there is one) that carries a ceiling."""
    candidates = [r for r in results if r.metrics.unconstrained and r.feature_set == result.feature_set
                  and r.metrics.ceiling_curve]
    return next((r for r in candidates if r.seed == result.seed), candidates[0] if candidates else None)


def r50_over_ceiling(result: TrainedResult, results: list[TrainedResult]) -> tuple[float | None, bool]:
    """(R50 / the ceiling's R50 at the same JSD50/floor, whether the row is flatter than any map so the ratio is a
    lower bound)."""
    ceiling = ceiling_for(result, results)
    points = ceiling_points(ceiling) if ceiling else []
    if not points:
        return None, False
    flatness = result.metrics.ratio50
    at = r50_at_flatness(points, flatness, clamp=True)
    return (result.metrics.r50 / at if at else None), flatness < min(p[0] for p in points)


@dataclass
class MatchedFlatness(Record):
    """R50 along one method's lambda scan (the mean over the seeds at each lambda), at each ``MATCHED_FLATNESS``,
    beside the ceiling's R50 there."""

    feature_set: str
    method: str
    lambdas: list[float]
    points: list[tuple[float, float]]        # (JSD50/floor, R50) per lambda
    r50_at: list[float | None]               # at each MATCHED_FLATNESS
    ceiling_at: list[float | None]


def matched_flatness(results: list[TrainedResult]) -> list[MatchedFlatness]:
    """Per (feature set, method) with a lambda scan: R50 at each ``MATCHED_FLATNESS`` along the scan and the
    ceiling's R50 there."""
    found = []
    for feature_set, method in sorted({(r.feature_set, r.method) for r in results if r.takes_lambda}):
        scan = [r for r in results if (r.feature_set, r.method) == (feature_set, method)]
        lambdas = sorted({r.lam for r in scan})
        if len(lambdas) < 2:
            continue
        points = [(float(np.mean([r.metrics.ratio50 for r in scan if r.lam == lam])),
                   float(np.mean([r.metrics.r50 for r in scan if r.lam == lam]))) for lam in lambdas]
        ceiling = ceiling_points(c) if (c := ceiling_for(scan[0], results)) else []
        found.append(MatchedFlatness(feature_set, method, lambdas, points,
                                     [r50_at_flatness(points, f) for f in MATCHED_FLATNESS],
                                     [r50_at_flatness(ceiling, f, clamp=True) if ceiling else None
                                      for f in MATCHED_FLATNESS]))
    return found


# --------------------------------------------------------------------------- rows


@dataclass
class ComparisonRow(Record):
    """One result's (one seed's) line of the comparison."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"lam": "lambda"}

    label: str
    method: str
    feature_set: str
    seed: int
    lam: float | None                        # None for a method that takes none
    r50: float
    jsd50_over_floor: float
    jsd80_over_floor: float
    r50_over_ceiling: float | None
    ceiling_lower_bound: bool                # flatter than any ceiling map: the ratio is a lower bound
    kept_epochs: list[KeptEpoch]
    categories: int
    categories_requested: int
    with_function: int
    fallback: int
    exponential_passes: int
    templates_with_power: int                # templates of at least fits.template_min_statistics x the data
    template_ratios: list[float]
    zeta_positive: int
    worst_bias_over_allowance: float | None
    worst_bias_category: str | None
    z_statistical: float
    z_statistical_and_modelling: float
    z: float                                 # every uncertainty: the headline
    z_by_channel: dict[str, float]
    z_passing: float | None                  # the headline without the fall-back categories
    mu_95: float | None
    unconstrained: bool = False
    r50_single_higgs: float | None = None    # single-Higgs rejection at the signal's 50% cut (training's)


def _channel_z(fitted: list[CategoryFit], channel: str) -> float:
    """A channel's Z, the quadrature sum of its categories'."""
    return math.sqrt(sum(r.expected.all_uncertainties.significance ** 2 for r in fitted
                         if r.category.startswith(f"{channel}_") or r.category == channel))


def comparison_row(result: TrainedResult, results: list[TrainedResult], fit: FitResult,
                   categories: CategoriesFile) -> ComparisonRow:
    """One result's (one seed's) line of the comparison."""
    records, fitted = fit.categories, fit.fitted
    exponential = [s for r in records if (s := r.spurious("exponential")) is not None]
    combined = fit.combined
    worst = max(fitted, key=lambda r: r.bias.over_allowance, default=None)
    minimum = fit.conventions.fits.template_min_statistics
    templates = [r.template for r in records if r.template]
    over_ceiling, lower_bound = r50_over_ceiling(result, results)
    # a multi-class model's control categories are not asked for: they count on both sides
    controls = len(records) - sum(max(len(b), 1) for b in categories.categories.values())
    return ComparisonRow(
        result.label, result.method, result.feature_set, result.seed, result.lam if result.takes_lambda else None,
        result.metrics.r50, result.metrics.ratio50, result.metrics.ratio80, over_ceiling, lower_bound,
        result.metrics.kept_epochs, len(records), categories.requested() + max(controls, 0),
        len([r for r in fitted if not r.fallback]), len(fit.fallback), sum(s.passed for s in exponential),
        sum(1 for t in templates if t.effective_over_data >= minimum), [t.effective_over_data for t in templates],
        sum(1 for r in records if (s := r.spurious(r.chosen_family)) is not None and s.max_zeta > 0),
        worst.bias.over_allowance if worst else None, worst.category if worst else None,
        combined.statistical_only.significance if combined else 0.0,
        combined.statistical_and_modelling.significance if combined else 0.0,
        combined.all_uncertainties.significance if combined else 0.0,
        {channel: _channel_z(fitted, channel) for channel in categories.categories},
        combined.passing_categories.significance if combined and combined.passing_categories else None,
        combined.all_uncertainties.upper_limit if combined else None, result.metrics.unconstrained,
        result.metrics.r50_single_higgs)


@dataclass
class Spread(Record):
    """A figure over seeds: mean, standard deviation and how many seeds gave it, and each seed's value."""

    mean: float
    sd: float
    n: int
    values: list[float | None] = field(default_factory=list)   # per seed, in the row's seed order

    def __format__(self, spec: str) -> str:
        return f"{self.mean:{spec}} ± {self.sd:{spec}}" if self.n > 1 else f"{self.mean:{spec}}"


def spread(values: list[float | None]) -> Spread | None:
    """Mean, sd and count of the values given (None where no seed gave one)."""
    given = [v for v in values if v is not None]
    if not given:
        return None
    return Spread(float(np.mean(given)), float(np.std(given, ddof=1)) if len(given) > 1 else 0.0, len(given),
                  list(values))


@dataclass
class Separation(Record):
    """The paired difference of Z between a row and the next over the seeds they share."""

    seeds: int
    difference: float | None
    error: float | None
    separated: bool


@dataclass
class TableRow(Record):
    """One row of the comparison: a (feature set, method, lambda) over its seeds."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"lam": "lambda", "next_row": "next"}

    feature_set: str
    method: str
    lam: float | None
    seeds: list[int]
    r50: Spread
    jsd50_over_floor: Spread
    jsd80_over_floor: Spread
    r50_over_ceiling: Spread | None
    z: Spread
    z_statistical_and_modelling: Spread
    z_statistical: Spread
    z_passing: Spread | None
    mu_95: Spread | None
    ceiling_lower_bound: bool
    kept_epochs: list[KeptEpoch]
    categories: int
    categories_requested: int
    with_function: Spread
    fallback: Spread
    exponential_passes: Spread
    templates_with_power: Spread
    zeta_positive: Spread
    template_ratio_range: list[float] | None
    unconstrained: bool = False
    r50_single_higgs: Spread | None = None
    next_row: Separation | None = None       # against the row below

    @property
    def label(self) -> str:
        """The row's name in a sentence."""
        return f"{self.method} ({self.feature_set})"


def table_row(members: list[ComparisonRow]) -> TableRow:
    """The seeds of one (feature set, method, lambda) as one row."""
    members = sorted(members, key=lambda r: r.seed)
    first, ratios = members[0], [v for r in members for v in r.template_ratios]
    return TableRow(
        first.feature_set, first.method, first.lam, [r.seed for r in members],
        spread([r.r50 for r in members]), spread([r.jsd50_over_floor for r in members]),
        spread([r.jsd80_over_floor for r in members]), spread([r.r50_over_ceiling for r in members]),
        spread([r.z for r in members]), spread([r.z_statistical_and_modelling for r in members]),
        spread([r.z_statistical for r in members]), spread([r.z_passing for r in members]),
        spread([r.mu_95 for r in members]), any(r.ceiling_lower_bound for r in members),
        [e for r in members for e in r.kept_epochs], first.categories, first.categories_requested,
        spread([r.with_function for r in members]), spread([r.fallback for r in members]),
        spread([r.exponential_passes for r in members]), spread([r.templates_with_power for r in members]),
        spread([r.zeta_positive for r in members]), [min(ratios), max(ratios)] if ratios else None,
        first.unconstrained, spread([r.r50_single_higgs for r in members]))


def aggregate(rows: list[ComparisonRow]) -> list[TableRow]:
    """One row per (feature set, method, lambda) over its seeds, ranked by mean Z with the separation from the next
    row (the paired difference in standard errors)."""
    groups: dict[tuple, list[ComparisonRow]] = {}
    for row in rows:
        groups.setdefault((row.feature_set, row.method, row.lam), []).append(row)
    table = sorted((table_row(members) for members in groups.values()), key=lambda e: -e.z.mean)
    for above, below in zip(table, table[1:], strict=False):
        above.next_row = separation(above, below)
    return table


def separation(above: TableRow, below: TableRow) -> Separation:
    """The paired difference of Z between two rows over the seeds they share: mean, standard error, and whether it
    exceeds ``SEPARATION`` standard errors."""
    shared = sorted(set(above.seeds) & set(below.seeds))
    za = dict(zip(above.seeds, above.z.values, strict=True))
    zb = dict(zip(below.seeds, below.z.values, strict=True))
    d = np.array([za[s] - zb[s] for s in shared])
    if len(d) < 2:
        return Separation(len(d), float(d.mean()) if len(d) else None, None, False)
    error = float(d.std(ddof=1) / math.sqrt(len(d)))
    mean = float(d.mean())
    return Separation(len(d), mean, error, bool(error == 0 and mean > 0 or error > 0 and mean > SEPARATION * error))


# --------------------------------------------------------------------------- the table


def _number(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _versus(row: TableRow) -> str:
    nxt = row.next_row
    if nxt is None:
        return "–"
    if nxt.error is None:
        return "not separated (one seed)"
    return f"{'separated' if nxt.separated else 'not separated'}: ΔZ = {nxt.difference:+.2f} ± {nxt.error:.2f}"


def comparison_markdown(table: list[TableRow]) -> list[str]:
    """The comparison as a Markdown table, best mean Z (every uncertainty) first, each figure mean ± sd over seeds."""
    lines = ["| method | features | λ | seeds | R50 | R50 (single H) | JSD50 / floor | JSD80 / floor | R50 / ceiling | "
             "categories: function / fall-back | template / data | Z (stat.) | Z (stat. + modelling) | **Z** | "
             "Z without fall-backs | μ95 | against the next row |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in table:
        asked = f" (of {e.categories_requested} asked)" if e.categories_requested != e.categories else ""
        ceiling = ("≥ " if e.ceiling_lower_bound else "") + _number(e.r50_over_ceiling, ".2f")
        ratios = e.template_ratio_range
        lines.append(f"| {e.method} | {e.feature_set} | {_number(e.lam, 'g')} | {len(e.seeds)} | "
                     f"{e.r50:.1f} | {_number(e.r50_single_higgs, '.1f')} | {e.jsd50_over_floor:.2f} | {e.jsd80_over_floor:.2f} | {ceiling} | "
                     f"{e.with_function.mean:.1f} / {e.fallback.mean:.1f} of {e.categories}{asked} | "
                     f"{f'{ratios[0]:.0f}–{ratios[1]:.0f}' if ratios else '–'} | {e.z_statistical:.2f} | "
                     f"{e.z_statistical_and_modelling:.2f} | **{e.z:.2f}** | {_number(e.z_passing, '.2f')} | "
                     f"{_number(e.mu_95, '.2f')} | {_versus(e)} |")
    return lines


def matched_flatness_markdown(found: list[MatchedFlatness]) -> list[str]:
    """R50 at matched flatness along each lambda scan, beside the ceiling's."""
    if not found:
        return []
    columns = " | ".join(f"R50 at {f:g} | ceiling at {f:g}" for f in MATCHED_FLATNESS)
    lines = [f"| method | features | λ scanned | {columns} |", "|---|---|---|" + "---|---|" * len(MATCHED_FLATNESS)]
    for m in found:
        cells = " | ".join(f"{_number(r, '.2f')} | {_number(c, '.2f')}" for r, c in zip(m.r50_at, m.ceiling_at,
                                                                                       strict=True))
        lines.append(f"| {m.method} | {m.feature_set} | {', '.join(f'{x:g}' for x in m.lambdas)} | {cells} |")
    return lines


def comparison_summary(table: list[TableRow]) -> str:
    """One sentence: the best row by mean Z and whether it is separated from the next, with the seed spread."""
    if not table:
        return "No result to compare."
    best = table[0]
    text = (f"Best mean expected significance with every uncertainty: {best.label}, Z = {best.z:.2f} "
            f"over {len(best.seeds)} seed(s)")
    nxt = best.next_row
    if nxt is not None and len(table) > 1:
        second = table[1]
        if nxt.separated:
            text += (f", separated from {second.label} (Z = {second.z:.2f}; paired ΔZ = "
                     f"{nxt.difference:+.2f} ± {nxt.error:.2f})")
        else:
            detail = f"paired ΔZ = {nxt.difference:+.2f} ± {nxt.error:.2f}" if nxt.error is not None else "one seed"
            text += f", but not separated from {second.label} (Z = {second.z:.2f}; {detail}): no winner is named"
    unconstrained = [e for e in table if e.unconstrained and e.feature_set == best.feature_set]
    if unconstrained and unconstrained[0] is not best:
        u = unconstrained[0]
        text += (f"; the unconstrained classifier on the same features reaches Z = {u.z:.2f} "
                 f"({u.z_statistical:.2f} statistical only)")
    return text + "."


@dataclass
class Comparison(Record):
    """comparison.json: the per-seed rows, the table over seeds, its sentence, and R50 at matched flatness."""

    rows: list[ComparisonRow]
    table: list[TableRow]
    summary: str
    matched_flatness: list[MatchedFlatness] = field(default_factory=list)


def write_comparison(rows: list[ComparisonRow], out: str | Path, results: list[TrainedResult] | None = None
                     ) -> tuple[Path, Path]:
    """comparison.json (per-seed rows, the aggregated table, matched flatness) and comparison.md in ``out``."""
    from ..atomic import write_text

    out = Path(out)
    table = aggregate(rows)
    comparison = Comparison(rows, table, comparison_summary(table), matched_flatness(results or []))
    md = ["# Methods side by side", "", *comparison_markdown(table), "", comparison.summary, ""]
    if comparison.matched_flatness:
        md += ["## R50 at matched flatness (along each λ scan)", "",
               *matched_flatness_markdown(comparison.matched_flatness), ""]
    return (write_text(out / COMPARISON_FILE, json.dumps(comparison.to_dict(), indent=1, default=float) + "\n"),
            write_text(out / "comparison.md", "\n".join(md)))


COMPARISON_FILE = "comparison.json"


def read_comparison(folder: str | Path) -> Comparison:
    """comparison.json of a ``tth-adv compare`` folder; one error naming it where it is missing or not one."""
    return read_record(Comparison, Path(folder) / COMPARISON_FILE, "the comparison of tth-adv compare",
                       "rerun tth-adv compare", required=["rows", "table"])
