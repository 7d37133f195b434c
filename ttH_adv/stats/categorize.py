"""Score categories that maximise the combined expected significance (``tth-adv categorize``).

Per channel, boundaries are searched on a grid of signal-score quantiles.  The figure of merit
never looks at the TI data the fits use, category by category: for a category

* s is the ttH MC (TI) yield in the signal window (``mass.blind_low``-``blind_high``);
* b is the background template's yield in the window -- the continuum yy MC (TI) and the NTNI
  data in the channel's yy fraction, scaled to the channel's TI data sidebands (one number per
  channel: the data enter the figure of merit only there) -- plus the resonant Higgs MC in the window;
* delta, the category's modelling uncertainty as the fit will see it, is the template's excess in
  the window over what its own sidebands predict with the channel's window/sideband ratio (what a
  classifier's sculpting does), less twice its statistical error (the relaxed spurious-signal
  criterion), at least zero;

Z = Asimov significance with a background uncertainty delta (Cowan's formula), the categories in
quadrature.  A category needs ``min_sideband`` events of the template in the sidebands and, where the fit
configuration is given, a background template of ``fits.template_min_statistics`` times the data's
statistics: the template the fit will build (``templates.build_template``) from the same events, measured
against the same yardstick, the category's TI data sideband count (a count outside the window, in a pass/fail
requirement; the figure of merit itself keeps the channel-wide scale).  The search is exhaustive over the grid;
the best combination's categories are checked, and one with a template short of the statistics is ruled out
and the search repeated.  A channel that cannot support the number of
categories asked for gets the most it can (``fewer_than_requested`` in categories.json, and a warning).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ..atomic import write_text
from ..config import FitConfig, MassWindow
from ..dump import read_dump
from ..errors import TthAdvError
from ..records import Record, read_record
from .fits import asimov_significance
from .templates import Components, RegionSpectra, build_template, measure_photon_fraction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Events:
    """Scored events of one kind: score, weight and m_yy."""

    score: np.ndarray
    weight: np.ndarray
    mass: np.ndarray

    @classmethod
    def empty(cls) -> Events:
        """No events."""
        return cls(np.zeros(0), np.zeros(0), np.zeros(0))


@dataclass(frozen=True)
class ChannelEvents:
    """What a channel's categories are chosen from (TI region unless said, nominal): the signal and resonant MC,
    the template's two parts, and the TI data, whose sidebands set the template's scale, channel-wide."""

    signal: Events
    resonant: Events
    continuum: Events    # continuum yy MC
    ntni: Events         # NTNI data (weight 1)
    data: Events         # TI data (blinded in the window)
    templates: TemplateEvents | None = None  # by sample, for the template-statistics requirement


@dataclass(frozen=True)
class SampleEvents:
    """A selection's template events by sample: each continuum yy MC dataset (TI) and the NTNI data."""

    continuum: dict[str, Events]
    ntni: Events


@dataclass(frozen=True)
class TemplateEvents:
    """What the fit's background templates are made of, for a channel: its events, those of the rest of its
    control selection (``None`` where it has none) and the inclusive selection's ingredients."""

    channel: SampleEvents
    rest: SampleEvents | None
    inclusive: Components


@dataclass
class ChannelCategories(Record):
    """One channel's best boundaries and what they give, per category."""

    z: float                          # the channel's combined expected significance (quadrature)
    boundaries: list[float]           # descending score thresholds
    category_z: list[float]
    sideband_events: list[float]      # template events in each category's sidebands
    background_in_window: list[float]
    modelling: list[float]            # the template's window excess: the modelling uncertainty in the figure of merit
    photon_fraction: float
    requested: int                    # the categories asked for (more than found where the sidebands support fewer)
    template_statistics: list[float] = field(default_factory=list)  # each template's statistics ratio, as expected
    template_statistics_met: bool = True  # False: no category could reach it, the boundaries were chosen without it


@dataclass
class Shortfall(Record):
    """A channel with fewer categories than asked for."""

    requested: int
    found: int


@dataclass
class CategoriesFile(Record):
    """categories.json: the boundaries per channel (what ``run --categories`` reads) and how they were found."""

    categories: dict[str, list[float]]
    details: dict[str, ChannelCategories] = field(default_factory=dict)
    combined_z: float = 0.0
    min_sideband: float = 0.0
    template_min_statistics: float = 0.0  # the statistics ratio every category's template reaches (0: not asked)
    fewer_than_requested: dict[str, Shortfall] = field(default_factory=dict)
    figure_of_merit: str = ("template-based background (TI data only as each channel's sideband count) and the "
                            "template's window excess as the modelling uncertainty")

    def requested(self) -> int:
        """The categories asked for, over the channels."""
        return sum(self.details[c].requested if c in self.details else len(b) for c, b in self.categories.items())


def significance_with_uncertainty(s: float, b: float, sigma: float) -> float:
    """Asimov significance of s over b known to +/- sigma (Cowan, Cranmer, Gross & Vitells); sigma 0: the plain one."""
    if b <= 0 or s <= 0:
        return 0.0
    if sigma <= 1e-6 * b:
        return asimov_significance(s, b)
    v = sigma**2
    first = (s + b) * math.log((s + b) * (b + v) / (b * b + (s + b) * v))
    second = b * b / v * math.log1p(v * s / (b * (b + v)))
    return math.sqrt(max(2 * (first - second), 0.0))


@dataclass(frozen=True)
class TemplateScale:
    """Each template part's scale (events per unit weight) in a channel, and the yy fraction behind them."""

    continuum: float
    ntni: float
    photon_fraction: float


def template_scale(events: ChannelEvents, window: MassWindow) -> TemplateScale:
    """Each template part's scale in the channel: the two parts in the yy fraction the channel's TI data sidebands
    measure, at their yield; and that fraction."""
    edges = window.edges()
    continuum, ntni = (np.histogram(e.mass, edges, weights=e.weight)[0].astype(float)
                       for e in (events.continuum, events.ntni))
    c_total, n_total = float(continuum.sum()), float(ntni.sum())
    data = np.histogram(events.data.mass, edges)[0].astype(float)
    fraction, _, total = measure_photon_fraction(data, continuum / c_total if c_total > 0 else continuum,
                                                 ntni / n_total if n_total > 0 else ntni, window.sideband_bins(edges))
    return TemplateScale(total * fraction / c_total if c_total > 0 else 0.0,
                         total * (1 - fraction) / n_total if n_total > 0 else 0.0, fraction)


def _interval_sums(scores: np.ndarray, values: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cumulative sums of values for score >= each candidate (candidates descending)."""
    # index = how many candidates lie strictly above the score: 0 means score >= candidates[0]
    index = np.searchsorted(-candidates, -scores, side="left")
    sums = np.bincount(index, weights=values, minlength=len(candidates) + 1)
    return np.cumsum(sums)[: len(candidates)]


def score_candidates(events: ChannelEvents, grid: int = 25) -> np.ndarray:
    """The boundary candidates, descending: quantiles of the channel's signal score."""
    return np.unique(np.quantile(events.signal.score, np.linspace(0.02, 0.98, grid)))[::-1]


def optimise_channel(events: ChannelEvents, n_categories: int, min_sideband: float, window: MassWindow,
                     grid: int = 25, fits: FitConfig | None = None) -> ChannelCategories:
    """Best descending boundaries for one channel, with as many categories as asked for or, where its
    sidebands (or, with ``fits``, its templates' statistics) cannot support them, as many as they can
    (``requested`` says how many were asked for).  Where not even one category's template reaches the
    statistics, the boundaries are chosen without that requirement, and ``template_statistics_met`` says so."""
    statistics = None
    if fits is not None and events.templates is not None:
        statistics = TemplateStatistics(events, score_candidates(events, grid), window, fits)
    for n in range(n_categories, 0, -1):
        best = optimise_boundaries(events, n, min_sideband, window, grid, statistics)
        if best is not None:
            return replace(best, requested=n_categories)
    if statistics is not None:  # the simulation is too small for the requirement: the sidebands' alone
        best = optimise_channel(events, n_categories, min_sideband, window, grid)
        return replace(best, template_statistics_met=False)
    raise TthAdvError(f"not even 1 category with >= {min_sideband:g} template events in the sidebands "
                      f"({int(np.sum(~window.in_window(events.data.mass)))} data events in the whole channel's): "
                      "lower --min-sideband")


def _cumulative_histograms(e: Events, weights: np.ndarray, candidates: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histograms in m_yy of the events with score >= each candidate (candidates descending), [candidates, bins]."""
    index = np.searchsorted(-candidates, -e.score, side="left")  # 0: score >= candidates[0]
    bins = np.clip(np.digitize(e.mass, edges) - 1, 0, len(edges) - 2)
    inside = (e.mass >= edges[0]) & (e.mass < edges[-1])
    counts = np.zeros((len(candidates) + 1, len(edges) - 1))
    np.add.at(counts, (index[inside], bins[inside]), weights[inside])
    return np.cumsum(counts, axis=0)[: len(candidates)]


@dataclass(frozen=True)
class _CumulativeSamples:
    """A selection's template samples as cumulative histograms over the candidates: (values, variances) per
    continuum dataset, and the NTNI data."""

    continuum: dict[str, tuple[np.ndarray, np.ndarray]]
    ntni: np.ndarray

    @classmethod
    def of(cls, samples: SampleEvents, candidates: np.ndarray, edges: np.ndarray) -> _CumulativeSamples:
        """The cumulative histograms of ``samples``."""
        return cls({name: (_cumulative_histograms(e, e.weight, candidates, edges),
                           _cumulative_histograms(e, e.weight**2, candidates, edges))
                    for name, e in samples.continuum.items()},
                   _cumulative_histograms(samples.ntni, samples.ntni.weight, candidates, edges))

    def components(self, previous: int, take: int) -> Components:
        """The template ingredients of the category (previous, take] (previous -1: from the top)."""
        def interval(cumulative: np.ndarray) -> np.ndarray:
            return cumulative[take] - (cumulative[previous] if previous >= 0 else 0.0)

        samples = {name: (interval(v), interval(var)) for name, (v, var) in self.continuum.items()}
        size = self.ntni.shape[1]
        return Components(sum((v for v, _ in samples.values()), np.zeros(size)),
                          sum((var for _, var in samples.values()), np.zeros(size)), interval(self.ntni), samples)


class TemplateStatistics:
    """The statistics ratio (effective template events per data event) of each candidate category's background
    template, built as the fit builds it from the same events and measured against the same yardstick: the data
    events the category's TI sidebands hold (a count outside the signal window; the figure of merit itself takes
    the channel-wide template scale, where the simulation's normalisation in one category can be off severalfold)."""

    def __init__(self, events: ChannelEvents, candidates: np.ndarray, window: MassWindow, fits: FitConfig) -> None:
        self.window, self.fits, self.edges = window, fits, window.edges()
        self.inclusive = events.templates.inclusive
        self.own = _CumulativeSamples.of(events.templates.channel, candidates, self.edges)
        rest = events.templates.rest
        self.rest = _CumulativeSamples.of(rest, candidates, self.edges) if rest is not None else None
        # the TI data counts (blinded in the window: the sidebands' alone), per candidate
        self.data = _cumulative_histograms(events.data, np.ones(len(events.data.score)), candidates, self.edges)
        self._ratios: dict[tuple[int, int], float] = {}

    def ratio(self, previous: int, take: int) -> float:
        """The template statistics ratio of the category (previous, take] (previous -1: from the top)."""
        if (previous, take) not in self._ratios:
            own = self.own.components(previous, take)
            control = own.plus(self.rest.components(previous, take)) if self.rest is not None else None
            data = self.data[take] - (self.data[previous] if previous >= 0 else 0.0)
            template = build_template(data, own, self.edges, self.window, self.fits, self.inclusive, control=control)
            self._ratios[(previous, take)] = template.statistics_ratio if template is not None else 0.0
        return self._ratios[(previous, take)]

    def enough(self, previous: int, take: int) -> bool:
        """Whether the category's template reaches ``fits.template_min_statistics``."""
        return self.ratio(previous, take) >= self.fits.template_min_statistics


def sculpting_excess(values: np.ndarray, variance: np.ndarray, edges: np.ndarray, window: MassWindow
                     ) -> tuple[float, float]:
    """(the template's excess in the window over an exponential fitted to its sidebands, that excess's
    statistical error) of one category's template histogram: the spurious signal its sculpting would give."""
    from scipy import optimize

    centres = 0.5 * (edges[:-1] + edges[1:])
    side, inside = window.sideband_bins(edges), ~window.sideband_bins(edges)
    if values[side].sum() <= 0:
        return 0.0, 0.0
    x = (centres - centres[0]) / (centres[-1] - centres[0])

    def nll(slope: float) -> float:  # Poisson likelihood of the sidebands, the normalisation profiled
        shape = np.exp(slope * x)
        norm = values[side].sum() / shape[side].sum()
        expected = np.maximum(norm * shape[side], 1e-12)
        return float(np.sum(expected - values[side] * np.log(expected)))

    slope = optimize.minimize_scalar(nll, bounds=(-20.0, 20.0), method="bounded").x
    shape = np.exp(slope * x)
    ratio = shape[inside].sum() / shape[side].sum()
    excess = values[inside].sum() - ratio * values[side].sum()
    return float(excess), float(np.sqrt(variance[inside].sum() + ratio**2 * variance[side].sum()))


def optimise_boundaries(events: ChannelEvents, n_categories: int, min_sideband: float, window: MassWindow,
                        grid: int = 25, statistics: TemplateStatistics | None = None) -> ChannelCategories | None:
    """Best descending boundaries for exactly ``n_categories`` (exhaustive over the grid); None if none has
    ``min_sideband`` template events in the sidebands of every category (and, with ``statistics``, a template of
    the statistics asked for)."""
    scale = template_scale(events, window)
    candidates = score_candidates(events, grid)
    signal = _interval_sums(events.signal.score, events.signal.weight * window.in_window(events.signal.mass),
                            candidates)
    resonant = _interval_sums(events.resonant.score, events.resonant.weight * window.in_window(events.resonant.mass),
                              candidates)
    # the template (its two parts at their scales) per score interval, in goodness-of-fit bins
    edges = np.arange(window.low, window.high + 1e-9, window.gof_bin_width)
    template = np.zeros((len(candidates), len(edges) - 1))
    variance = np.zeros_like(template)
    for e, c in ((events.continuum, scale.continuum), (events.ntni, scale.ntni)):
        template += _cumulative_histograms(e, c * e.weight, candidates, edges)
        variance += _cumulative_histograms(e, (c * e.weight) ** 2, candidates, edges)
    side = window.sideband_bins(edges)
    excess = {}  # (previous boundary, boundary) -> modelling term of that category

    def modelling(previous: int, take: int) -> float:
        if (previous, take) not in excess:
            below = (lambda a: a[previous]) if previous >= 0 else (lambda a: 0.0)
            found, error = sculpting_excess(template[take] - below(template), variance[take] - below(variance),
                                            edges, window)
            excess[(previous, take)] = max(abs(found) - 2 * error, 0.0)
        return excess[(previous, take)]

    sideband_sums, window_sums = template[:, side].sum(axis=1), template[:, ~side].sum(axis=1)
    # Every category is an interval between two candidates (previous -1: from the top): its sums, its modelling
    # term and its Z once per interval; a combination of intervals is then a lookup.
    n = len(candidates)
    previous = np.arange(-1, n)[:, None]
    take = np.arange(n)[None, :]

    def interval(cumulative: np.ndarray) -> np.ndarray:  # [previous + 1, take]: sum over (previous, take]
        below = np.where(previous >= 0, cumulative[np.maximum(previous, 0)], 0.0)
        return cumulative[take] - below

    in_sidebands, in_window = interval(sideband_sums), interval(window_sums)
    s_window, r_window = interval(signal), interval(resonant)
    z_interval = np.full((n + 1, n), -np.inf)
    for p, t in zip(*np.nonzero(take > previous), strict=True):
        if in_sidebands[p, t] >= min_sideband:
            z_interval[p, t] = significance_with_uncertainty(s_window[p, t], in_window[p, t] + r_window[p, t],
                                                             modelling(p - 1, t))
    combos = np.array(list(itertools.combinations(range(n), n_categories)), dtype=int).reshape(-1, n_categories)
    starts = np.concatenate([np.zeros((len(combos), 1), int), combos[:, :-1] + 1], axis=1)  # previous + 1
    while True:
        z_parts = z_interval[starts, combos]
        valid = np.isfinite(z_parts).all(axis=1)  # every category with its sideband events
        totals = np.full(len(combos), -1.0)
        totals[valid] = np.sqrt(np.square(z_parts[valid]).sum(axis=1))
        if not len(combos) or totals.max() < 0:
            return None
        i = int(np.argmax(totals))
        combo, rows = combos[i], starts[i]
        short = [(r, t) for r, t in zip(rows, combo, strict=True)
                 if statistics is not None and not statistics.enough(r - 1, t)]
        if not short:
            break
        for r, t in short:  # ruled out: the next best combination without it
            z_interval[r, t] = -np.inf
    ratios = [statistics.ratio(r - 1, t) for r, t in zip(rows, combo, strict=True)] if statistics is not None else []
    return ChannelCategories(float(totals[i]), [float(candidates[k]) for k in combo], z_parts[i].tolist(),
                             in_sidebands[rows, combo].tolist(), in_window[rows, combo].tolist(),
                             [modelling(r - 1, t) for r, t in zip(rows, combo, strict=True)],
                             scale.photon_fraction, n_categories, ratios)


def _frame_events(rows) -> Events:
    return Events(rows.score.to_numpy(), rows.weight.to_numpy(), rows.mgg.to_numpy())


def _events(frame, role: str, region: str, channel: str) -> Events:
    return _frame_events(frame[(frame.role == role) & (frame.region == region) & (frame.channel == channel)])


def _sample_events(rows) -> SampleEvents:
    """The template samples of some rows of a scored dump: each continuum dataset (TI) and the NTNI data."""
    continuum = rows[(rows.role == "continuum") & (rows.region == "TI")]
    return SampleEvents({name: _frame_events(group) for name, group in continuum.groupby("dataset", observed=True)},
                        _frame_events(rows[(rows.role == "data") & (rows.region == "NTNI")]))


def inclusive_components(frame, edges: np.ndarray) -> Components:
    """The inclusive selection's template ingredients (every selected diphoton event), as the fit's
    ``mgg_inclusive`` histogram gives them: continuum MC by dataset, NTNI data and, where a reducible MC is
    given, the simulated TI and NTNI spectra."""
    def histogram(rows) -> tuple[np.ndarray, np.ndarray]:
        return (np.histogram(rows.mgg, edges, weights=rows.weight)[0].astype(float),
                np.histogram(rows.mgg, edges, weights=rows.weight**2)[0].astype(float))

    def role(name: str, region: str):
        return frame[(frame.role == name) & (frame.region == region)]

    samples = {name: histogram(group) for name, group in role("continuum", "TI").groupby("dataset", observed=True)}
    mc = sum((v for v, _ in samples.values()), np.zeros(len(edges) - 1))
    mc_variance = sum((var for _, var in samples.values()), np.zeros(len(edges) - 1))
    regions = None
    if len(role("reducible", "TI")) or len(role("reducible", "NTNI")):
        regions = RegionSpectra(mc, histogram(role("continuum", "NTNI"))[0],
                                histogram(role("reducible", "TI"))[0], histogram(role("reducible", "NTNI"))[0])
    return Components(mc, mc_variance, histogram(role("data", "NTNI"))[0], samples, regions)


def _template_events(frame, channel: str, inclusive: Components) -> TemplateEvents:
    rest = frame[(frame.channel != channel) & (frame.control == channel)]
    return TemplateEvents(_sample_events(frame[frame.channel == channel]), _sample_events(rest) if len(rest) else None,
                          inclusive)


def scored_events(dump_dir: str | Path, score_columns: list[str]):
    """The nominal rows of a scored dump, with the given score columns (a pandas frame)."""
    labels = ["role", "region", "channel", "control", "dataset"]
    table = read_dump(dump_dir, columns=[*score_columns, "mgg", "weight", *labels, "systematic"])
    frame = table.filter(pc.equal(table["systematic"], "nominal")).to_pandas()
    return frame.astype({name: "category" for name in labels})  # the selections compare codes, not strings


def categorize(dump_dir: str | Path, n_categories: dict[str, int], window: MassWindow, min_sideband: float = 10,
               score_column: str = "score", events=None, fits: FitConfig | None = None,
               inclusive: Components | None = None) -> CategoriesFile:
    """Optimise boundaries per channel from a dump that carries scores (``score_column``: one model's of several;
    ``events``: its rows already read by ``scored_events``, ``inclusive``: their ``inclusive_components``); with
    ``fits``, every category's template reaches ``fits.template_min_statistics`` times the data's statistics."""
    frame = scored_events(dump_dir, [score_column]) if events is None else events
    frame = frame[[score_column, *(c for c in frame.columns if not c.startswith("score"))]].rename(
        columns={score_column: "score"})  # one model's score: every selection below copies fewer columns
    if fits is not None and inclusive is None:
        inclusive = inclusive_components(frame, window.edges())
    result = {}
    for channel, n in n_categories.items():
        events = ChannelEvents(_events(frame, "signal", "TI", channel), _events(frame, "resonant", "TI", channel),
                               _events(frame, "continuum", "TI", channel), _events(frame, "data", "NTNI", channel),
                               _events(frame, "data", "TI", channel),
                               _template_events(frame, channel, inclusive) if fits is not None else None)
        if len(events.signal.score) == 0 or len(events.data.score) == 0:
            raise TthAdvError(f"channel {channel!r}: no signal or no data rows in {dump_dir}")
        result[channel] = optimise_channel(events, n, min_sideband, window, fits=fits)
        if not result[channel].template_statistics_met:
            log.warning("channel %s: no category's background template reaches %gx the data's statistics, so its "
                        "boundaries are chosen without that requirement (more continuum MC would lift it)", channel,
                        fits.template_min_statistics)
        elif len(result[channel].boundaries) < n:
            log.warning("channel %s: its sidebands and templates support %d of the %d categories asked for (>= %g "
                        "template events each in the sidebands%s)", channel, len(result[channel].boundaries), n,
                        min_sideband, f", >= {fits.template_min_statistics:g}x the data's statistics" if fits else "")
    combined = float(np.sqrt(sum(r.z ** 2 for r in result.values())))
    fewer = {c: Shortfall(r.requested, len(r.boundaries)) for c, r in result.items()
             if len(r.boundaries) < r.requested}
    return CategoriesFile({c: r.boundaries for c, r in result.items()}, result, combined, min_sideband,
                          fits.template_min_statistics if fits is not None else 0.0, fewer)


def write_categories(result: CategoriesFile, path: str | Path) -> Path:
    """categories.json, readable by ``tth-adv run --categories``."""
    return write_text(path, json.dumps(result.to_dict(), indent=1) + "\n")


def read_categories_file(path: str | Path) -> CategoriesFile:
    """A categories.json as ``write_categories`` wrote it; one error naming it where it is missing or not one."""
    return read_record(CategoriesFile, path, "a categories file (tth-adv categorize writes one)",
                       "rerun tth-adv categorize", required=["categories"], error=TthAdvError)


def read_categories(path: str | Path) -> dict[str, list[float]]:
    """The boundaries of a categories.json."""
    return read_categories_file(path).categories
