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
estimated from zero counts would pin the fit to zero there).  Below ``fits.template_min_statistics`` times the data, the template
is smoothed by Gaussian-process regression (scikit-learn) of its residuals from a fitted
exponential (the GP's mean; without it the GP regresses to a constant at the range's edges);
kernel: constant x RBF with the length scale bounded below by ``fits.gp_length_scale[0]`` GeV,
so it cannot model a bump of the signal's width; each bin's variance enters as its noise; and the spurious-signal test uses the
relaxed criterion zeta = max(|S_spur| - 2 Delta_MC, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from iminuit import Minuit

from .config import FitConfig, MassWindow


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
                "effective_over_data": self.statistics_ratio, "smoothed": self.smoothed, "kernel": self.kernel}


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


def build_template(data_ti: np.ndarray, mc: np.ndarray, mc_variance: np.ndarray, ntni: np.ndarray,
                   edges: np.ndarray, window: MassWindow, config: FitConfig) -> Template | None:
    """The category's background template (None when it has neither continuum MC nor NTNI events)."""
    mc = np.maximum(mc, 0.0)  # bins dominated by negative-weight MC events hold no background
    if mc.sum() <= 0 and ntni.sum() <= 0:
        return None
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
    template = Template(raw, raw, variance, fit_variance, fraction, error, mc_effective, float(ntni.sum()), total,
                        False)
    if template.statistics_ratio < config.template_min_statistics:
        template.values, template.kernel = smooth(raw, fit_variance, edges, config.gp_length_scale)
        template.smoothed = True
    return template


def _component_variance(values: np.ndarray, variance: np.ndarray, floor: float) -> np.ndarray:
    """Per-bin variance of a component's unit shape, each bin at least ``floor`` (one event's)."""
    total = values.sum()
    return np.maximum(variance, floor) / total**2 if total > 0 else np.zeros_like(values)


def smooth(values: np.ndarray, noise: np.ndarray, edges: np.ndarray, length_scale: tuple[float, float]
           ) -> tuple[np.ndarray, str]:
    """Gaussian-process regression of a binned template, each bin's variance as its noise; returns (mean, kernel)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    centres = 0.5 * (edges[:-1] + edges[1:])[:, None]
    mean = _exponential_fit(values, noise, edges)
    scale = float(np.sqrt(noise.mean()))
    kernel = ConstantKernel(1.0, (1e-4, 1e4)) * RBF(length_scale=max(30.0, length_scale[0]),
                                                   length_scale_bounds=tuple(length_scale))
    gp = GaussianProcessRegressor(kernel, alpha=noise / scale**2, n_restarts_optimizer=2, random_state=0)
    gp.fit(centres, (values - mean) / scale)
    return np.maximum(gp.predict(centres) * scale + mean, 0.0), str(gp.kernel_)


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
