"""Background-only templates for the spurious-signal test, with their statistics measured by replicas.

A category's template is the continuum yy MC (TI region, its shape) plus the reducible y+jet/jet+jet
part, whose shape is the NTNI data, in the yy fraction f that a binned Poisson fit of the two shapes
to the category's TI data sidebands measures (the MC's own normalisation is not used: on the
synthetic samples it is off by a factor 2-30 in the categories).  The fit also sets the yield, so
the template holds the data's sideband count.  A component whose shape holds less than one of its
events in the sidebands (a score cut that confines the category to the window) is given that one
event there, spread flat: an empty sideband is not known to be empty, and without it the fit would
shrink the template to nothing under the peak.

Where the category's own events give the template ``fits.template_min_statistics`` times the data's
statistics, its shapes are the category's own (``OWN``).  Elsewhere each component's shape is the
inclusive selection's (``mgg_inclusive``: every selected diphoton event, before any jet, lepton,
b-tag or score requirement) times the category's efficiency in m_yy (``EFFICIENCY``),

    eps_k(m) = P(category | selected, m) = sum_j K(m, m_j) n_j / sum_j K(m, m_j) N_j,

the category's own events n over the inclusive ones N of that component, smoothed by a Gaussian
kernel K of ``fits.efficiency_bandwidth`` GeV (Nadaraya-Watson).  It carries what the channel's
requirements and the classifier's score cut do to m_yy -- the sculpting among it -- onto a base
with statistics to spare; structure narrower than the kernel is smeared, its integral kept.  The
closure test (the category's own events against eps x inclusive, chi2 in ``mass.gof_bin_width``
bins, the smoother's effective parameters off the degrees of freedom) is recorded with every
template.

Statistics.  ``fits.template_replicas`` replicas remake the template from resampled inputs: counts
Poisson-resampled (weighted MC through its effective counts per bin; the category's events and the
rest of the selection independently, the efficiency recomputed); f and the yield stay at the data's
fit.  Their per-bin
variance gives the effective statistics (sum t)^2 / sum var(t), compared with the data events the
template stands for, and ``fits.spurious_signal`` takes Delta_MC from the replicas themselves, so
the correlations the efficiency brings between bins are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from iminuit import Minuit

from ..config import FitConfig, MassWindow
from .fit_results import Closure, TemplateFacts
from .fits import gof_groups

OWN, EFFICIENCY = "own", "efficiency in m_yy"
COMPONENTS = ("continuum", "ntni")


@dataclass(frozen=True)
class Components:
    """A template's two ingredients in one category or selection: continuum yy MC and NTNI data."""

    mc: np.ndarray           # continuum yy MC (TI), sum of weights per bin
    mc_variance: np.ndarray  # its sum of w^2 per bin
    ntni: np.ndarray         # NTNI data counts per bin

    def empty(self) -> bool:
        """Neither continuum MC nor NTNI events."""
        return np.maximum(self.mc, 0.0).sum() <= 0 and self.ntni.sum() <= 0

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(values, variances) per component; negative-weight bins count as empty."""
        return {"continuum": (np.maximum(self.mc, 0.0), np.maximum(self.mc_variance, 0.0)),
                "ntni": (self.ntni, self.ntni)}


@dataclass
class Template:
    values: np.ndarray        # expected background per bin at the data's yield
    variance: np.ndarray      # statistical variance per bin, from the replicas
    fit_variance: np.ndarray  # the same with a floor of one event per component and bin: for fits
    replicas: np.ndarray      # [replicas, bins]: the template remade from resampled inputs
    photon_fraction: float    # yy share measured in the TI data sidebands
    photon_fraction_error: float
    data_events: float        # the data yield the template stands for (whole range)
    data_sideband: float      # TI data events in the sidebands
    template_sideband: float  # the template's events there (the fit makes them the data's)
    method: str               # OWN or EFFICIENCY
    own_statistics_ratio: float
    mc_effective_events: float
    ntni_events: float
    closure: dict[str, Closure | None] = field(default_factory=dict)

    @property
    def effective_events(self) -> float:
        """(sum t)^2 / sum var(t): the statistics the template carries."""
        total_variance = float(self.variance.sum())
        return float(self.values.sum()) ** 2 / total_variance if total_variance > 0 else float("inf")

    @property
    def statistics_ratio(self) -> float:
        """Effective template events per data event."""
        return self.effective_events / self.data_events if self.data_events > 0 else float("inf")

    def closure_p_value(self) -> float | None:
        """The smallest closure p-value over the components (None where nothing was compared)."""
        values = [c.p_value for c in self.closure.values() if c and np.isfinite(c.p_value)]
        return min(values) if values else None

    def record(self) -> TemplateFacts:
        """The template's facts for fits.json."""
        return TemplateFacts(self.method, self.statistics_ratio, self.own_statistics_ratio, self.effective_events,
                             self.data_events, self.data_sideband, self.template_sideband, self.photon_fraction,
                             self.photon_fraction_error, self.mc_effective_events, self.ntni_events,
                             dict(self.closure), self.closure_p_value(), int(len(self.replicas)))


def measure_photon_fraction(data: np.ndarray, photon_shape: np.ndarray, reducible_shape: np.ndarray,
                            sideband: np.ndarray) -> tuple[float, float, float]:
    """(yy fraction, its error, total yield) from a Poisson fit of two unit shapes to the data sidebands."""
    if photon_shape.sum() <= 0 or reducible_shape.sum() <= 0:  # one component only: nothing to measure
        fraction = 1.0 if photon_shape.sum() > 0 else 0.0
        shape = photon_shape if fraction else reducible_shape
        return fraction, 0.0, float(data[sideband].sum() / max(shape[sideband].sum(), 1e-12))
    observed = data[sideband]

    def nll(total: float, fraction: float) -> float:
        expected = total * (fraction * photon_shape + (1 - fraction) * reducible_shape)[sideband]
        expected = np.maximum(expected, 1e-12)
        return float(np.sum(expected - observed * np.log(expected)))

    minuit = Minuit(nll, total=max(float(observed.sum()), 1.0), fraction=0.5)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits = [(0, None), (0.0, 1.0)]
    minuit.migrad()
    minuit.hesse()
    return float(minuit.values["fraction"]), float(minuit.errors["fraction"]), float(minuit.values["total"])


# --------------------------------------------------------------------------- efficiency in m_yy


def _effective(values: np.ndarray, variance: np.ndarray) -> float:
    """The mean weight of a weighted histogram (1 for counts): sum w^2 / sum w."""
    return float(variance.sum() / values.sum()) if values.sum() > 0 else 1.0


def kernel(centres: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel weights between bin centres, [bins, bins] (bandwidth in GeV)."""
    distance = (centres[:, None] - centres[None, :]) / bandwidth
    return np.exp(-0.5 * distance**2)


def efficiency(passed: np.ndarray, total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The kernel-smoothed efficiency passed / total per bin (Nadaraya-Watson: sums over the kernel), 0 where the
    kernel holds no total; ``passed`` and ``total`` may be stacks of replicas [n, bins]."""
    numerator, denominator = passed @ weights.T, total @ weights.T
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


# --------------------------------------------------------------------------- replicas


def resampled(values: np.ndarray, variance: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n Poisson replicas of a histogram, [n, bins]: a weighted bin through its effective count (sum w)^2 / sum w^2."""
    values, variance = np.maximum(values, 0.0), np.maximum(variance, 0.0)
    weight = np.divide(variance, values, out=np.ones_like(values), where=values > 0)
    counts = np.divide(values, weight, out=np.zeros_like(values), where=weight > 0)
    return rng.poisson(counts, size=(n, len(values))) * weight


# --------------------------------------------------------------------------- the template


def build_template(data_ti: np.ndarray, own: Components, edges: np.ndarray, window: MassWindow, config: FitConfig,
                   inclusive: Components | None = None, seed: int = 0) -> Template | None:
    """The category's background template (None when it has neither continuum MC nor NTNI events).

    Its own shapes where they carry ``config.template_min_statistics`` x the data's statistics (or where
    no inclusive selection is given), else the inclusive shapes times the category's efficiency in
    m_yy (module docstring)."""
    if own.empty():
        return None
    rng = np.random.default_rng(seed)
    side = window.sideband_bins(edges)
    own_parts = {k: (values, resampled(values, variance, rng, config.template_replicas))
                 for k, (values, variance) in own.parts().items()}
    template = _assemble(data_ti, own_parts, side, OWN)
    template.own_statistics_ratio = template.statistics_ratio
    if template.statistics_ratio >= config.template_min_statistics or inclusive is None or inclusive.empty():
        return _finished(template, own)
    weights = kernel(0.5 * (edges[:-1] + edges[1:]), config.efficiency_bandwidth)
    parts, closure = {}, {}
    for k, (values, variance) in own.parts().items():
        base, base_variance = inclusive.parts()[k]
        base = np.maximum(base, values)  # the category is a subset of the inclusive selection
        if values.sum() <= 0:
            parts[k] = (np.zeros_like(values), np.zeros((config.template_replicas, len(values))))
            continue
        # the category's events and the others of the selection, resampled independently
        others, others_variance = base - values, np.maximum(base_variance - variance, 0.0)
        passed = resampled(values, variance, rng, config.template_replicas)
        failed = resampled(others, others_variance, rng, config.template_replicas)
        eps = efficiency(values, base, weights)
        parts[k] = (base * eps, (passed + failed) * efficiency(passed, passed + failed, weights))
        closure[k] = efficiency_closure(values, variance, base, eps, weights, edges, window.gof_bin_width)
    reweighted = _assemble(data_ti, parts, side, EFFICIENCY)
    reweighted.own_statistics_ratio = template.own_statistics_ratio
    reweighted.closure = {k: closure.get(k) for k in COMPONENTS}
    return _finished(reweighted, own)


def _assemble(data_ti: np.ndarray, parts: dict[str, tuple[np.ndarray, np.ndarray]], side: np.ndarray,
              method: str) -> Template:
    """The template of two component shapes (nominal, replicas) in the yy fraction the TI data sidebands measure."""
    (mc, mc_replicas), (ntni, ntni_replicas) = parts["continuum"], parts["ntni"]
    one_event = {k: _one_event(values, replicas) for k, (values, replicas) in parts.items()}

    def shape(component: str, rows: np.ndarray) -> np.ndarray:
        return _sideband_floored(_unit_rows(rows), side, np.sqrt(one_event[component]))

    photon, reducible = shape("continuum", mc), shape("ntni", ntni)
    fraction, error, total = measure_photon_fraction(data_ti, photon, reducible, side)

    def combined(photon: np.ndarray, reducible: np.ndarray) -> np.ndarray:
        return total * (fraction * photon + (1 - fraction) * reducible)

    values = combined(photon, reducible)
    replicas = combined(shape("continuum", mc_replicas), shape("ntni", ntni_replicas))
    variance = replicas.var(axis=0, ddof=1) if len(replicas) > 1 else np.zeros_like(values)
    # one event of each component per bin at least: an empty bin is not known to be empty
    floor = total**2 * (fraction**2 * one_event["continuum"] + (1 - fraction) ** 2 * one_event["ntni"])
    return Template(values, variance, np.maximum(variance, floor), replicas, fraction, error, total,
                    float(data_ti[side].sum()), float(values[side].sum()), method, float("nan"), 0.0, 0.0)


def _finished(template: Template, own: Components) -> Template:
    """The template with the category's own event counts recorded."""
    mc, variance = np.maximum(own.mc, 0.0), np.maximum(own.mc_variance, 0.0)
    template.mc_effective_events = float(mc.sum() ** 2 / variance.sum()) if variance.sum() > 0 else 0.0
    template.ntni_events = float(own.ntni.sum())
    return template


def _sideband_floored(unit: np.ndarray, side: np.ndarray, floor: float) -> np.ndarray:
    """Unit shapes (rows) holding at least ``floor`` (one event of the component) in the sidebands, spread flat
    there: a shape whose sidebands are empty is not known to be empty, and the data sidebands could not set its
    yield (a fit would shrink it to nothing under the peak)."""
    if floor <= 0:
        return unit
    missing = np.maximum(floor - unit[..., side].sum(axis=-1, keepdims=True), 0.0)
    missing = np.where(unit.sum(axis=-1, keepdims=True) > 0, missing, 0.0)  # an empty shape stays empty
    floored = unit + np.where(side, missing / side.sum(), 0.0)
    return _unit_rows(floored)


def _unit_rows(values: np.ndarray) -> np.ndarray:
    """Each row (or the one array) normalised to unit sum (zero where empty)."""
    total = values.sum(axis=-1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values, dtype=np.float64), where=total > 0)


def _one_event(values: np.ndarray, replicas: np.ndarray) -> float:
    """The variance one event brings to a bin of this component's unit shape: 1 / N_eff^2, N_eff = (sum v)^2 / sum
    var(v) from the replicas (0 for an empty component)."""
    spread = float(replicas.var(axis=0).sum()) if len(replicas) > 1 else 0.0
    return spread**2 / values.sum() ** 4 if values.sum() > 0 and spread > 0 else 0.0


def efficiency_closure(passed: np.ndarray, variance: np.ndarray, total: np.ndarray, eps: np.ndarray,
                       weights: np.ndarray, edges: np.ndarray, width: float) -> dict[str, float] | None:
    """How well the smoothed efficiency ``eps`` (``efficiency`` with the kernel ``weights``) describes the
    category's own events: Pearson chi2 of their counts against eps x total in ``width`` GeV bins (effective
    counts of the category's mean weight), with the smoother's effective parameters, trace of its hat matrix,
    taken off the degrees of freedom."""
    from scipy import stats

    if passed.sum() <= 0:
        return None
    scale = _effective(passed, variance)
    group = gof_groups(edges, width)
    observed = np.bincount(group, weights=passed) / scale
    predicted = np.bincount(group, weights=eps * total) / scale
    use = predicted > 0
    chi2 = float(np.sum((observed[use] - predicted[use]) ** 2 / predicted[use]))
    smoothed_total = weights @ total
    effective_parameters = float(np.sum(np.divide(total, smoothed_total, out=np.zeros_like(total),
                                                  where=smoothed_total > 0)))
    ndf = float(use.sum()) - effective_parameters
    return Closure(chi2, ndf, float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan"))
