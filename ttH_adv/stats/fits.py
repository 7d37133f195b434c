"""Background families, sideband fits and their goodness of fit, the signal model, the spurious-signal test and
the bias toys (iminuit, scipy); the S+B likelihood is ``ttH_adv.stats.likelihood``.

Conventions (docs/fits.md):

* histograms are m_yy counts in the configured window and bins (``config.mass``; the histogram
  edges carry the range, the window gives the blinded region); shapes are integrated over each
  bin (5-point Simpson) and normalised over the full range, so a sideband fit predicts the
  blinded window too;
* ``Poisson`` likelihoods for data, Asimov data and the bias toys; ``chi2`` with the bin variances
  for the weighted signal MC and the spurious-signal fits to the templates;
* goodness of fit: the saturated-model Poisson likelihood ratio (deviance) on ``mass.gof_bin_width``
  bins of the fitted region, its p-value from chi2 or, for few events, from refitted toys;
* the signal model is a double-sided Crystal Ball fitted to the ttH MC in each category.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from iminuit import Minuit
from scipy import special, stats

from ..config import MassWindow
from .fit_results import ScanPoint, SpuriousTest


def _x(m: np.ndarray, low: float, high: float) -> np.ndarray:
    """m_yy mapped onto [-1, 1] over the fit range."""
    return (np.asarray(m) - 0.5 * (low + high)) / (0.5 * (high - low))


def _t(m: np.ndarray, low: float, high: float) -> np.ndarray:
    """m_yy mapped onto [0, 1] over the fit range."""
    return (np.asarray(m) - low) / (high - low)


@dataclass(frozen=True)
class BackgroundFunction:
    name: str
    n_params: int
    density: Callable[..., np.ndarray]   # (m, params, low, high): unnormalised, positive
    start: tuple[float, ...]
    gradient: Callable[..., np.ndarray]  # (m, params, low, high, density at m): d density / d params, [n_params, *m]


def _bernstein(order: int) -> BackgroundFunction:
    # Bernstein coefficients -> power-series coefficients in t: C(n,i) t^i (1-t)^(n-i) expanded
    # once here, so a density is one Horner evaluation (the fits call it ~10^5 times).
    i, k = np.meshgrid(np.arange(order + 1), np.arange(order + 1))
    to_powers = np.where(k >= i, special.comb(order, i) * special.comb(order - i, k - i) * (-1.0) ** (k - i), 0.0)

    def density(m, p, low, high):
        coeffs = np.concatenate(([1.0], np.asarray(p, dtype=np.float64) ** 2))  # the first fixed: normalisation is separate
        return np.polynomial.polynomial.polyval(_t(m, low, high), to_powers @ coeffs)

    def gradient(m, p, low, high, values):  # coefficient j + 1 is p_j^2
        return np.polynomial.polynomial.polyval(_t(m, low, high), to_powers[:, 1:] * (2 * np.asarray(p, float)))

    return BackgroundFunction(f"bernstein{order}", order, density, tuple([0.8] * order), gradient)


def _exppoly(m, p, lo, hi):
    x = _x(m, lo, hi)
    return np.exp(sum(c * x ** (i + 1) for i, c in enumerate(p)))


def _exppoly_gradient(m, p, lo, hi, values):
    x = _x(m, lo, hi)
    return np.stack([x ** (i + 1) for i in range(len(p))]) * values


def _powerlaw(m, p, lo, hi):
    return (np.asarray(m) / lo) ** p[0]


FAMILIES: dict[str, BackgroundFunction] = {
    "exponential": BackgroundFunction("exponential", 1, _exppoly, (-0.5,), _exppoly_gradient),
    "exppoly2": BackgroundFunction("exppoly2", 2, _exppoly, (-0.5, 0.0), _exppoly_gradient),
    "powerlaw": BackgroundFunction("powerlaw", 1, _powerlaw, (-3.0,),
                                   lambda m, p, lo, hi, values: (np.log(np.asarray(m) / lo) * values)[None]),
    **{f"bernstein{n}": _bernstein(n) for n in range(2, 6)},
}
# Fewest parameters first: the spurious-signal test picks the first family that passes.
FAMILY_ORDER = ("exponential", "powerlaw", "exppoly2", "bernstein2", "bernstein3", "bernstein4", "bernstein5")


@functools.lru_cache(maxsize=64)
def _simpson_nodes(edges: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Simpson nodes [bins, 5] and bin widths of a binning (cached: the fits evaluate shapes ~10^5 times)."""
    bounds = np.frombuffer(edges)
    lo, hi = bounds[:-1], bounds[1:]
    return lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 5)[None, :], hi - lo


_SIMPSON_WEIGHTS = np.array([1, 4, 2, 4, 1]) / 12.0


def bin_integrals(density: Callable[[np.ndarray], np.ndarray], edges: np.ndarray) -> np.ndarray:
    """Integral of a density over each bin (Simpson's rule with 5 points per bin)."""
    points, widths = _simpson_nodes(np.asarray(edges, dtype=np.float64).tobytes())
    return (density(points) @ _SIMPSON_WEIGHTS) * widths


def normalised_shape(density: Callable[[np.ndarray], np.ndarray], edges: np.ndarray) -> np.ndarray:
    """Fraction of the density in each bin (normalised over the given bins).

    Minimisers probe extreme parameters; overflowing shapes come back as NaN, which the
    likelihoods below turn into a huge penalty rather than a warning.
    """
    with np.errstate(all="ignore"):
        integrals = bin_integrals(density, edges)
        total = float(integrals.sum())
    if not (math.isfinite(total) and total > 0):
        return np.full(len(integrals), np.nan)
    return integrals / total


def family_shape(family: str, params, edges: np.ndarray) -> np.ndarray:
    """Fraction of a background family's density in each bin, normalised over the edges' range."""
    fn = FAMILIES[family]
    return normalised_shape(lambda m: fn.density(m, params, edges[0], edges[-1]), edges)


def family_shape_gradient(family: str, params, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``family_shape`` and its derivatives by the parameters, [n_params, bins] (NaN shape, zero gradient where
    the shape overflows)."""
    fn = FAMILIES[family]
    points, widths = _simpson_nodes(np.asarray(edges, dtype=np.float64).tobytes())
    with np.errstate(all="ignore"):  # the density once at the nodes: the gradient is made from it
        values = fn.density(points, params, edges[0], edges[-1])
        integrals = (values @ _SIMPSON_WEIGHTS) * widths
        total = float(integrals.sum())
        if not (math.isfinite(total) and total > 0):
            return np.full(len(integrals), np.nan), np.zeros((fn.n_params, len(integrals)))
        derivatives = (fn.gradient(points, params, edges[0], edges[-1], values) @ _SIMPSON_WEIGHTS) * widths
    shape = integrals / total
    return shape, derivatives / total - shape[None, :] * (derivatives.sum(axis=1) / total)[:, None]


class _ShapeAt:
    """A family's shape and gradient at the last parameters asked for: MIGRAD asks for the value and the
    gradient at the same point, so each is computed once."""

    def __init__(self, family: str, edges: np.ndarray) -> None:
        self.family, self.edges, self._key, self._value = family, edges, None, None

    def __call__(self, params) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(float(p) for p in params)
        if key != self._key:
            self._key, self._value = key, family_shape_gradient(self.family, key, self.edges)
        return self._value


# --------------------------------------------------------------------------- signal model


def dscb(m: np.ndarray, mu: float, sigma: float, alpha_lo: float, n_lo: float, alpha_hi: float,
         n_hi: float) -> np.ndarray:
    """Double-sided Crystal Ball (unnormalised): Gaussian core with power-law tails."""
    t = (np.asarray(m) - mu) / sigma
    out = np.exp(-0.5 * t**2)
    lo = t < -alpha_lo
    hi = t > alpha_hi
    a_lo = (n_lo / alpha_lo) ** n_lo * np.exp(-0.5 * alpha_lo**2)
    b_lo = n_lo / alpha_lo - alpha_lo
    a_hi = (n_hi / alpha_hi) ** n_hi * np.exp(-0.5 * alpha_hi**2)
    b_hi = n_hi / alpha_hi - alpha_hi
    out = np.where(lo, a_lo * np.abs(b_lo - t) ** (-n_lo), out)
    return np.where(hi, a_hi * np.abs(b_hi + t) ** (-n_hi), out)


@dataclass
class SignalModel:
    params: dict[str, float]
    yield_: float
    chi2_ndf: float

    def shape(self, edges: np.ndarray, mass: float | None = None, scale: float = 1.0,
              width: float = 1.0) -> np.ndarray:
        """Fraction of the signal per bin, optionally moved to another Higgs mass, its position times ``scale``
        and its width times ``width``."""
        p = dict(self.params)
        if mass is not None:
            p["mu"] = mass
        p["mu"], p["sigma"] = p["mu"] * scale, p["sigma"] * width
        return normalised_shape(lambda m: dscb(m, **p), edges)


def fit_signal(counts: np.ndarray, variances: np.ndarray, edges: np.ndarray, window: MassWindow) -> SignalModel:
    """Fit a double-sided Crystal Ball to a (weighted) signal MC histogram by chi2 (peak inside the window)."""
    total = float(counts.sum())
    use = variances > 0

    def chi2(mu, sigma, alpha_lo, n_lo, alpha_hi, n_hi):
        expected = total * normalised_shape(lambda m: dscb(m, mu, sigma, alpha_lo, n_lo, alpha_hi, n_hi), edges)
        value = float(np.sum((counts[use] - expected[use]) ** 2 / variances[use]))
        return value if np.isfinite(value) else 1e30

    minuit = Minuit(chi2, mu=window.higgs, sigma=1.7, alpha_lo=1.5, n_lo=5.0, alpha_hi=1.5, n_hi=5.0)
    minuit.errordef = Minuit.LEAST_SQUARES
    minuit.limits = [window.blind, (0.5, 5), (0.3, 5), (1.01, 50), (0.3, 5), (1.01, 50)]
    minuit.migrad()
    ndf = max(int(use.sum()) - 6, 1)
    return SignalModel({k: float(minuit.values[k]) for k in minuit.parameters}, total, float(minuit.fval) / ndf)


# --------------------------------------------------------------------------- background fits


@dataclass
class BackgroundFit:
    family: str
    params: list[float]
    norm: float              # events over the full fit range
    norm_error: float
    deviance: float          # saturated-model Poisson likelihood ratio, -2 ln(L / L_saturated), merged bins
    ndf: int
    p_value: float           # of the deviance: asymptotic (chi2 with ndf) or from toys (``p_value_from``)
    converged: bool
    p_value_from: str = "asymptotic"

    @property
    def deviance_ndf(self) -> float:
        """The deviance per degree of freedom."""
        return self.deviance / self.ndf if self.ndf > 0 else float("nan")

    def expected(self, edges: np.ndarray) -> np.ndarray:
        """Expected background per bin."""
        return self.norm * family_shape(self.family, self.params, edges)


def _poisson_nll(observed: np.ndarray, expected: np.ndarray) -> float:
    if not np.isfinite(expected).all():
        return 1e30
    expected = np.maximum(expected, 1e-12)
    return float(np.sum(expected - observed * np.log(expected)))


def _poisson_nll_slope(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """d _poisson_nll / d expected, per bin (0 where the expectation is clipped or not finite)."""
    with np.errstate(all="ignore"):
        slope = 1.0 - observed / expected
    return np.where(np.isfinite(expected) & (expected > 1e-12), slope, 0.0)


def _minimise(minuit: Minuit, with_errors: bool) -> Minuit:
    """MIGRAD at strategy 0 (with the analytic gradient, strategy 1's numerical Hessian seed costs five times
    the fit and finds the same minimum), then HESSE at strategy 1 where errors are used."""
    minuit.strategy = 0
    minuit.migrad()
    if with_errors:
        minuit.strategy = 1
        minuit.hesse()
    return minuit


def gof_groups(edges: np.ndarray, width: float) -> np.ndarray:
    """Each bin's goodness-of-fit bin: its ``width`` GeV group counted from the first edge."""
    return np.floor((edges[:-1] - edges[0]) / width + 1e-9).astype(int)


def _merged(values: np.ndarray, edges: np.ndarray, mask: np.ndarray, width: float) -> np.ndarray:
    """Sums over ``width`` GeV groups of bins lying wholly inside ``mask`` (a group overlapping it is dropped)."""
    group = gof_groups(edges, width)
    whole = np.bincount(group, weights=mask.astype(float)) == np.bincount(group)
    return np.bincount(group, weights=np.where(mask, values, 0.0))[whole]


def saturated_deviance(observed: np.ndarray, expected: np.ndarray, edges: np.ndarray, mask: np.ndarray,
                       width: float) -> tuple[float, int]:
    """-2 ln(L / L_saturated) of Poisson counts and the number of merged bins, in ``width`` GeV bins inside ``mask``."""
    o, e = _merged(observed, edges, mask, width), _merged(expected, edges, mask, width)
    e = np.maximum(e, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(o > 0, o * np.log(o / e), 0.0)
    return float(2.0 * np.sum(e - o + log_term)), int(len(o))


def fit_background(counts: np.ndarray, edges: np.ndarray, family: str, mask: np.ndarray, gof_width: float,
                   start: BackgroundFit | None = None) -> BackgroundFit:
    """Binned Poisson likelihood fit of a background family to counts in the masked bins.

    Goodness of fit: the saturated-model likelihood ratio on ``gof_width`` GeV bins inside the mask,
    its p-value from chi2 with (bins - parameters) degrees of freedom (``gof_p_value_from_toys``
    where the counts are too few for that).  ``start``: a previous fit to begin from (toys).
    """
    fn = FAMILIES[family]
    observed = counts[mask]
    start_norm = max(float(counts[mask].sum()) / max(mask.mean(), 1e-6), 1.0)
    shape_at = _ShapeAt(family, edges)

    def nll(*args):
        shape, _ = shape_at(args[1:])
        return _poisson_nll(observed, args[0] * shape[mask])

    def gradient(*args):
        shape, derivatives = shape_at(args[1:])
        slope = _poisson_nll_slope(observed, args[0] * shape[mask])
        return np.concatenate(([shape[mask] @ slope], args[0] * (derivatives[:, mask] @ slope)))

    names = ["norm"] + [f"p{i}" for i in range(fn.n_params)]
    initial = (start.norm, *start.params) if start is not None else (start_norm, *fn.start)
    minuit = Minuit(nll, *initial, grad=gradient, name=names)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits["norm"] = (0, None)
    _minimise(minuit, with_errors=start is None)
    params = [float(minuit.values[f"p{i}"]) for i in range(fn.n_params)]
    fit = BackgroundFit(family, params, float(minuit.values["norm"]), float(minuit.errors["norm"]), 0.0, 0, 1.0,
                        bool(minuit.valid))
    deviance, n = saturated_deviance(counts, fit.expected(edges), edges, mask, gof_width)
    fit.deviance, fit.ndf = deviance, n - (fn.n_params + 1)
    fit.p_value = float(stats.chi2.sf(deviance, fit.ndf)) if fit.ndf > 0 else float("nan")
    return fit


def gof_p_value_from_toys(fit: BackgroundFit, edges: np.ndarray, mask: np.ndarray, gof_width: float, toys: int,
                          seed: int = 0) -> float:
    """The deviance's p-value from Poisson toys of the fitted expectation, each refitted with the family."""
    rng = np.random.default_rng(seed)
    expected = fit.expected(edges)
    exceeding = sum(fit_background(rng.poisson(expected).astype(float), edges, fit.family, mask, gof_width,
                                   start=fit).deviance >= fit.deviance for _ in range(toys))
    return (1 + exceeding) / (1 + toys)


# --------------------------------------------------------------------------- spurious signal


def _signal_fit(cost: Callable[[np.ndarray], float], slope: Callable[[np.ndarray], np.ndarray], errordef: float,
                total: float, edges: np.ndarray, family: str, signal_shape: np.ndarray, with_error: bool = True,
                start: tuple[float, ...] | None = None) -> Minuit:
    """MIGRAD (and HESSE with ``with_error``) of ``cost`` of the expected S+B counts per bin (``slope``: its
    derivative by each bin's expectation); parameters s (may go negative), norm and the family's."""
    fn = FAMILIES[family]
    shape_at = _ShapeAt(family, edges)

    def objective(s, norm, *params):
        return cost(s * signal_shape + norm * shape_at(params)[0])

    def gradient(s, norm, *params):
        shape, derivatives = shape_at(params)
        g = slope(s * signal_shape + norm * shape)
        return np.concatenate(([signal_shape @ g, shape @ g], norm * (derivatives @ g)))

    names = ["s", "norm"] + [f"p{i}" for i in range(fn.n_params)]
    minuit = Minuit(objective, *(start or (0.0, max(total, 1.0), *fn.start)), grad=gradient, name=names)
    minuit.errordef = errordef
    return _minimise(minuit, with_error)


def fit_s_plus_b_poisson(counts: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                         with_error: bool = True, start: tuple[float, ...] | None = None) -> tuple[float, float]:
    """(signal yield, its error) of a binned Poisson S+B fit, from ``start`` (s, norm, params) if given; S may go
    negative."""
    minuit = _poisson_signal_fit(counts, edges, family, signal_shape, with_error, start)
    return float(minuit.values["s"]), float(minuit.errors["s"])


def _poisson_signal_fit(counts: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                        with_error: bool = True, start: tuple[float, ...] | None = None) -> Minuit:
    """``_signal_fit`` of the Poisson likelihood of ``counts`` (no expectation at or below zero)."""
    def nll(expected: np.ndarray) -> float:
        return 1e30 if (expected <= 0).any() else _poisson_nll(counts, expected)

    return _signal_fit(nll, lambda expected: _poisson_nll_slope(counts, expected), Minuit.LIKELIHOOD,
                       float(counts.sum()), edges, family, signal_shape, with_error, start)


def fit_s_plus_b_chi2(values: np.ndarray, variance: np.ndarray, edges: np.ndarray, family: str,
                      signal_shape: np.ndarray, replicas: np.ndarray | None = None,
                      start: list[float] | None = None) -> tuple[float, float]:
    """(signal yield, Delta_MC) of an S+B chi2 fit to a weighted template with its own bin variances.

    The expectation is linear in the signal and background yields: for given shape parameters both
    are solved for exactly (weighted least squares), and MIGRAD runs over the shape parameters alone.
    Delta_MC is the template's statistical uncertainty on the fitted signal: with ``replicas`` (the
    template remade from resampled inputs, [n, bins]) the spread of the fit's linear response to them,
    which keeps the correlations between bins; without, the error from the per-bin variances.
    The variances must be positive (``Template.fit_variance`` floors empty bins at one event).
    ``start``: shape parameters to begin from (and, a list, where the fitted ones are left).
    """
    fn = FAMILIES[family]
    weight = 1.0 / variance

    def yields(params) -> tuple[np.ndarray, float]:
        shape = family_shape(family, params, edges)
        if not np.isfinite(shape).all():
            return np.array([0.0, 0.0]), 1e30
        basis = np.stack([signal_shape, shape])
        normal = (basis * weight) @ basis.T
        try:
            solved = np.linalg.solve(normal, (basis * weight) @ values)
        except np.linalg.LinAlgError:
            return np.array([0.0, 0.0]), 1e30
        residual = values - solved @ basis
        return solved, float(np.sum(residual**2 * weight))

    minuit = Minuit(lambda *params: yields(params)[1], *(start or fn.start), name=[f"p{i}" for i in range(fn.n_params)])
    minuit.errordef = Minuit.LEAST_SQUARES
    _minimise(minuit, with_errors=False)
    params = [float(v) for v in minuit.values]
    if start is not None:
        start[:] = params
    (s, norm), _ = yields(params)
    response = signal_response(variance, edges, family, signal_shape, float(norm), params)
    if replicas is None:  # the linear response's spread under the per-bin variances
        return float(s), float(np.sqrt(np.sum(response**2 * variance)))
    return float(s), float(np.std((replicas - values) @ response, ddof=1)) if len(replicas) > 1 else 0.0


def signal_response(variance: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray, norm: float,
                    params: list[float]) -> np.ndarray:
    """d S_fitted / d template per bin of the S+B chi2 fit at (norm, params): the first row of
    (J^T W J)^-1 J^T W, J the expectation's derivatives by (s, norm, params), W = 1 / variance."""
    shape, derivatives = family_shape_gradient(family, params, edges)
    jacobian = np.column_stack([signal_shape, shape, *(norm * derivatives)])
    weighted = jacobian / variance[:, None]
    # the pseudo-inverse: a Bernstein coefficient at zero has no slope (it enters squared), a direction the
    # fit does not constrain and the signal does not depend on
    return (np.linalg.pinv(jacobian.T @ weighted) @ weighted.T)[0]


def spurious_signal(template: np.ndarray, variance: np.ndarray, edges: np.ndarray, family: str,
                    signal: SignalModel, expected_signal: float, data_signal_error: float,
                    masses: tuple[float, ...], fraction_of_signal: float = 0.10,
                    fraction_of_error: float = 0.20, replicas: np.ndarray | None = None) -> SpuriousTest:
    """ATLAS spurious-signal test on a background-only template at the data's yield.

    S+B fits over the m_H scan give S(m_H) and the template's own uncertainty Delta_MC(m_H) (from its
    ``replicas`` where given, ``fit_s_plus_b_chi2``);
    zeta = max(|S| - 2 Delta_MC, 0).  Pass: max zeta below ``fraction_of_signal`` of the expected
    signal or below ``fraction_of_error`` of the signal's statistical uncertainty in data.  For a
    template with statistics to spare Delta_MC is small and zeta is |S|.
    """
    scan = []
    start = list(FAMILIES[family].start)  # each mass begins where the last one's fit ended
    for mass in masses:
        s, delta = fit_s_plus_b_chi2(template, variance, edges, family, signal.shape(edges, mass), replicas, start)
        scan.append(ScanPoint(float(mass), s, delta, max(abs(s) - 2 * delta, 0.0)))
    worst = max(scan, key=lambda x: x.zeta)
    rel_expected = worst.zeta / expected_signal if expected_signal > 0 else float("inf")
    rel_error = worst.zeta / data_signal_error if data_signal_error > 0 else float("inf")
    passed = bool(rel_expected < fraction_of_signal or rel_error < fraction_of_error)
    return SpuriousTest(family, max(abs(x.signal) for x in scan), worst.zeta, worst.delta_mc, rel_expected, rel_error,
                        passed, scan, data_signal_error)


# Each family's next order, of which it is a special case: the only pairs an F-test compares.
NEXT_ORDER = {"exponential": "exppoly2", "bernstein2": "bernstein3", "bernstein3": "bernstein4",
              "bernstein4": "bernstein5"}


def f_test_probability(low: BackgroundFit, high: BackgroundFit) -> float:
    """Fisher F-test of a fit against its nested lower-order one, on their deviances: the probability that
    the gain is chance."""
    if NEXT_ORDER.get(low.family) != high.family:
        raise ValueError(f"an F-test needs nested families: {high.family} does not contain {low.family}")
    extra = low.ndf - high.ndf
    if extra <= 0 or high.ndf <= 0 or high.deviance <= 0:
        return 1.0
    f_value = ((low.deviance - high.deviance) / extra) / (high.deviance / high.ndf)
    return float(stats.f.sf(f_value, extra, high.ndf)) if f_value > 0 else 1.0


def bias_toys(template: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray, toys: int,
              seed: int = 0) -> np.ndarray:
    """Fitted signal in S+B fits (Poisson, the given family) to background-only toys drawn from the template."""
    rng = np.random.default_rng(seed)
    minuit = _poisson_signal_fit(template, edges, family, signal_shape, with_error=False)
    start = np.array(minuit.values, dtype=np.float64)  # every toy begins at the template's own fit
    fitted, failures = [], 0
    for _ in range(toys):
        counts = rng.poisson(template).astype(float)
        # MIGRAD where Fisher scoring fails (a minimum where a bin's expectation reaches zero), and for every toy after
        # two failures in a row: a Bernstein coefficient at zero (the template's fit puts some there) leaves it no
        # curvature to follow, and each toy would fail the same way
        found = fisher_scoring_fit(counts, edges, family, signal_shape, start) if failures < 2 else None
        failures = 0 if found is not None else failures + 1
        fitted.append(found[0] if found is not None else
                      fit_s_plus_b_poisson(counts, edges, family, signal_shape, with_error=False, start=tuple(start))[0])
    return np.array(fitted)


def fisher_scoring_fit(counts: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                       start: np.ndarray, max_steps: int = 50, edm: float = 1e-7) -> np.ndarray | None:
    """The binned Poisson S+B fit's minimum (s, norm, params) by Fisher scoring from ``start``; None where it does
    not converge (the caller then asks MIGRAD).

    Each step solves F d = g, with g the gradient of -log L and F = J diag(1/mu) J^T its expected Hessian (J the
    expectation's derivatives by the parameters), halving the step until -log L falls.  A toy drawn from the
    template lies close to the template's own fit, so a few steps reach the minimum MIGRAD finds, at a fraction of
    its cost (the bias test fits 50 toys per category and family)."""
    shape_at = _ShapeAt(family, edges)

    def expected(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shape, derivatives = shape_at(theta[2:])
        jacobian = np.vstack([signal_shape, shape, theta[1] * derivatives])
        return theta[0] * signal_shape + theta[1] * shape, jacobian

    def cost(mu: np.ndarray) -> float:
        return _poisson_nll(counts, mu) if np.isfinite(mu).all() and (mu > 0).all() else math.inf

    theta = np.asarray(start, dtype=np.float64).copy()
    mu, jacobian = expected(theta)
    current = cost(mu)
    for _ in range(max_steps):
        if not math.isfinite(current):
            return None
        gradient = jacobian @ (1.0 - counts / mu)
        # least squares: a Bernstein coefficient at zero (its square is the weight) leaves F singular in its direction
        step = np.linalg.lstsq((jacobian / mu) @ jacobian.T, gradient, rcond=1e-12)[0]
        if 0.5 * float(gradient @ step) < edm:  # the estimated distance to the minimum, as MIGRAD's EDM
            return theta
        length = 1.0
        while length > 1e-4:
            trial = theta - length * step
            trial_mu, trial_jacobian = expected(trial)
            trial_cost = cost(trial_mu)
            if trial_cost <= current:
                theta, mu, jacobian, current = trial, trial_mu, trial_jacobian, trial_cost
                break
            length *= 0.5
        else:
            return None
    return None


# --------------------------------------------------------------------------- counting


def asimov_significance(s: float, b: float) -> float:
    """Counting-experiment Asimov significance sqrt(2((s+b) ln(1+s/b) - s))."""
    if b <= 0 or s <= 0:
        return 0.0
    return math.sqrt(2 * ((s + b) * math.log1p(s / b) - s))
