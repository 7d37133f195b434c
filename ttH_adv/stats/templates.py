"""Background-only templates for the spurious-signal test: statistics to spare, or smoothed.

A category's template is the continuum yy MC (TI region, its shape) plus the reducible
y+jet/jet+jet part, whose shape is the NTNI data of the category; the yy fraction f is measured
from the data by a binned Poisson fit of the two shapes to the TI data sidebands (the MC's own
normalisation is not used: on the synthetic samples it is off by a factor 2-30 in the
categories).  The template is scaled to the data yield the fit finds over the whole range.

Its statistics: bin variances from the MC weights (sum w^2) and the NTNI counts, propagated
with the fraction; the effective number of events is (sum t)^2 / sum var(t), compared with the
data events it stands for.  Fits to the template and its smoothing use these variances with a
floor of one event of each component per bin (an empty bin is not known to be empty: a variance
estimated from zero counts would pin the fit to zero there).

Below ``fits.template_min_statistics`` times the data, both shapes come from the category plus
its channel's template control selection (``template_control``: the b-tag requirement dropped,
the same model's score categories; the processor's ``mgg_control``), as ATLAS ttH(yy) takes its
background shapes from looser selections; the category's own shapes and the control's are
compared by a chi2 test in ``mass.gof_bin_width`` bins, recorded with the template.  Still below
it, the template is smoothed by Gaussian-process regression (scikit-learn) of its residuals from a fitted
exponential (the GP's mean; without it the GP regresses to a constant at the range's edges);
kernel: constant x RBF with the length scale bounded below by ``fits.gp_length_scale[0]`` GeV,
so it cannot model a bump of the signal's width; each bin's variance enters as its noise; and the spurious-signal test uses the
relaxed criterion zeta = max(|S_spur| - 2 Delta_MC, 0).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
from iminuit import Minuit

from ..config import FitConfig, MassWindow

OWN_SHAPES, WITH_CONTROL = "category", "category + template control"


@dataclass
class Template:
    values: np.ndarray        # expected background per bin at the data's yield (smoothed where short)
    raw: np.ndarray           # before smoothing
    variance: np.ndarray      # statistical variance of ``raw`` per bin
    fit_variance: np.ndarray  # the same with a floor of one event per component and bin: for fits
    photon_fraction: float    # yy share measured in the TI data sidebands
    photon_fraction_error: float
    mc_effective_events: float
    ntni_events: float
    data_events: float        # the data yield the template stands for (whole range)
    smoothed: bool
    kernel: str = ""
    shapes: str = OWN_SHAPES            # where the shapes come from: the category, or with its control selection
    own_statistics_ratio: float | None = None  # the category's own shapes' statistics ratio, where not used
    control_compatibility: dict = field(default_factory=dict)  # chi2 of own vs control shapes, per component

    @property
    def effective_events(self) -> float:
        """(sum t)^2 / sum var(t): the statistics the template carries."""
        total_variance = float(self.variance.sum())
        return float(self.raw.sum()) ** 2 / total_variance if total_variance > 0 else float("inf")

    @property
    def statistics_ratio(self) -> float:
        """Effective template events per data event."""
        return self.effective_events / self.data_events if self.data_events > 0 else float("inf")

    def record(self) -> dict:
        """The template's facts for fits.json."""
        return {"photon_fraction": self.photon_fraction, "photon_fraction_error": self.photon_fraction_error,
                "mc_effective_events": self.mc_effective_events, "ntni_events": self.ntni_events,
                "data_events": self.data_events, "effective_events": self.effective_events,
                "effective_over_data": self.statistics_ratio, "smoothed": self.smoothed, "kernel": self.kernel,
                "shapes": self.shapes, "own_effective_over_data": self.own_statistics_ratio or self.statistics_ratio,
                "control_compatibility": self.control_compatibility}


def _unit(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


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


@dataclass(frozen=True)
class Components:
    """A template's two ingredients in one category or selection: continuum yy MC and NTNI data."""

    mc: np.ndarray           # continuum yy MC (TI), sum of weights per bin
    mc_variance: np.ndarray  # its sum of w^2 per bin
    ntni: np.ndarray         # NTNI data counts per bin

    def __add__(self, other: Components) -> Components:
        return Components(self.mc + other.mc, self.mc_variance + other.mc_variance, self.ntni + other.ntni)

    def empty(self) -> bool:
        """Neither continuum MC nor NTNI events."""
        return np.maximum(self.mc, 0.0).sum() <= 0 and self.ntni.sum() <= 0


def build_template(data_ti: np.ndarray, own: Components, edges: np.ndarray, window: MassWindow, config: FitConfig,
                   control: Components | None = None) -> Template | None:
    """The category's background template (None when it has neither continuum MC nor NTNI events).

    Below ``config.template_min_statistics`` x the data, the shapes come from the category plus its
    channel's template control selection where that gives more statistics (``shapes`` says which);
    still below it, the template is smoothed.  The category's own shapes are compared with the
    control's by a chi2 test (``control_compatibility``).
    """
    if own.empty():
        return None
    template = _combined_template(data_ti, own, edges, window)
    if control is not None and not control.empty():
        template.control_compatibility = control_compatibility(own, control, edges, window.gof_bin_width)
        if template.statistics_ratio < config.template_min_statistics:
            loose = _combined_template(data_ti, own + control, edges, window)
            if loose.statistics_ratio > template.statistics_ratio:
                loose.shapes, loose.own_statistics_ratio = WITH_CONTROL, template.statistics_ratio
                loose.control_compatibility = template.control_compatibility
                template = loose
    if template.statistics_ratio < config.template_min_statistics:
        template.values, template.kernel = smooth(template.raw, template.fit_variance, edges, config.gp_length_scale)
        template.smoothed = True
    return template


def _combined_template(data_ti: np.ndarray, parts: Components, edges: np.ndarray, window: MassWindow) -> Template:
    """MC and NTNI shapes in the yy fraction the TI data sidebands measure, at the data's yield (not smoothed)."""
    mc, mc_variance, ntni = np.maximum(parts.mc, 0.0), parts.mc_variance, parts.ntni  # negative-weight bins: none
    side = window.sideband_bins(edges)
    photon, reducible = _unit(mc), _unit(ntni)
    fraction, error, total = measure_photon_fraction(data_ti, photon, reducible, side)
    raw = total * (fraction * photon + (1 - fraction) * reducible)
    mc_weight = float(mc_variance.sum() / mc.sum()) if mc.sum() > 0 else 0.0  # the effective weight of one event

    def combined_variance(mc_floor: float, ntni_floor: float) -> np.ndarray:
        return total**2 * (fraction**2 * _component_variance(mc, mc_variance, mc_floor)
                           + (1 - fraction) ** 2 * _component_variance(ntni, ntni, ntni_floor))

    variance, fit_variance = combined_variance(0.0, 0.0), combined_variance(mc_weight**2, 1.0)
    mc_effective = float(mc.sum() ** 2 / mc_variance.sum()) if mc_variance.sum() > 0 else 0.0
    return Template(raw, raw, variance, fit_variance, fraction, error, mc_effective, float(ntni.sum()), total, False)


def shape_compatibility(a: np.ndarray, var_a: np.ndarray, b: np.ndarray, var_b: np.ndarray, edges: np.ndarray,
                        width: float) -> dict[str, float] | None:
    """Two-sample chi2 test that two m_yy shapes agree, in ``width`` GeV bins; None if one is empty.

    Weighted samples enter through their effective counts N = (sum w)^2 / sum w^2; each bin's
    variance is the pooled shape's (what both would share if they agree), not the bin's own, so an
    empty bin of a small sample is not taken as known to be empty.
    """
    from scipy import stats

    group = np.floor((edges[:-1] - edges[0]) / width + 1e-9).astype(int)
    a, b = np.bincount(group, weights=a), np.bincount(group, weights=b)
    total_a, total_b = float(a.sum()), float(b.sum())
    if total_a <= 0 or total_b <= 0:
        return None
    n_a, n_b = total_a**2 / float(var_a.sum()), total_b**2 / float(var_b.sum())  # effective counts
    pooled = (n_a * a / total_a + n_b * b / total_b) / (n_a + n_b)
    use = pooled > 0
    chi2 = float(np.sum((a / total_a - b / total_b)[use] ** 2 / pooled[use]) / (1 / n_a + 1 / n_b))
    ndf = int(use.sum()) - 1
    return {"chi2": chi2, "ndf": ndf, "p_value": float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan"),
            "effective_events": [n_a, n_b]}


def control_compatibility(own: Components, control: Components, edges: np.ndarray, width: float) -> dict:
    """The category's continuum MC and NTNI shapes against its control selection's, each by a chi2 test."""
    return {"continuum": shape_compatibility(np.maximum(own.mc, 0), own.mc_variance, np.maximum(control.mc, 0),
                                             control.mc_variance, edges, width),
            "ntni": shape_compatibility(own.ntni, own.ntni, control.ntni, control.ntni, edges, width)}


def _component_variance(values: np.ndarray, variance: np.ndarray, floor: float) -> np.ndarray:
    """Per-bin variance of a component's unit shape, each bin at least ``floor`` (one event's)."""
    total = values.sum()
    return np.maximum(variance, floor) / total**2 if total > 0 else np.zeros_like(values)


def smooth(values: np.ndarray, noise: np.ndarray, edges: np.ndarray, length_scale: tuple[float, float]
           ) -> tuple[np.ndarray, str]:
    """Gaussian-process regression of a binned template, each bin's variance as its noise; returns (mean, kernel)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    centres = 0.5 * (edges[:-1] + edges[1:])[:, None]
    mean = _exponential_fit(values, noise, edges)
    scale = float(np.sqrt(noise.mean()))
    kernel = ConstantKernel(1.0, (1e-4, 1e4)) * RBF(length_scale=max(30.0, length_scale[0]),
                                                   length_scale_bounds=tuple(length_scale))
    gp = GaussianProcessRegressor(kernel, alpha=noise / scale**2, n_restarts_optimizer=2, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        gp.fit(centres, (values - mean) / scale)
    # A hyperparameter at its bound (an amplitude at the floor, a length scale at the ceiling) means the
    # residual about the exponential mean has no structure the GP resolves: recorded in the kernel, not printed.
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    bounds = _bound_notes(caught)
    kernel_text = str(gp.kernel_) + (f" (at bound: {', '.join(bounds)})" if bounds else "")
    return np.maximum(gp.predict(centres) * scale + mean, 0.0), kernel_text


def _bound_notes(caught: list) -> list[str]:
    """'k2__length_scale upper' for each kernel hyperparameter sklearn found at a bound."""
    notes = []
    for w in caught:
        found = re.search(r"parameter (\w+) is close to the specified (upper|lower) bound", str(w.message))
        if found and f"{found.group(1)} {found.group(2)}" not in notes:
            notes.append(f"{found.group(1)} {found.group(2)}")
    return notes


def _exponential_fit(values: np.ndarray, variance: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The exponential closest to a template (chi2 with its variances), per bin: the GP's mean."""
    from .fits import family_shape

    def chi2(norm: float, slope: float) -> float:
        value = float(np.sum((values - norm * family_shape("exponential", [slope], edges)) ** 2 / variance))
        return value if np.isfinite(value) else 1e30

    minuit = Minuit(chi2, norm=max(float(values.sum()), 1.0), slope=-0.5)
    minuit.errordef = Minuit.LEAST_SQUARES
    minuit.migrad()
    return minuit.values["norm"] * family_shape("exponential", [minuit.values["slope"]], edges)
