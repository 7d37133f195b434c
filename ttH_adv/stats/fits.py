"""Sideband fits, spurious-signal test, signal model, S+B fits and significance (iminuit, scipy).

Conventions (docs/fits.md):

* histograms are m_yy counts in the configured window and bins (``config.mass``; the histogram
  edges carry the range, the window gives the blinded region); shapes are integrated over each
  bin (5-point Simpson) and normalised over the full range, so a sideband fit predicts the
  blinded window too;
* ``Poisson`` likelihoods for data, Asimov data and the spurious-signal template (raw counts,
  scaled to the data afterwards); ``chi2`` with bin variances for the weighted signal MC;
* chi2/ndf and its p-value use Pearson's chi2 on ``mass.gof_bin_width`` bins of the fitted region;
* the signal model is a double-sided Crystal Ball fitted to the ttH MC in each category;
* expected significance: the profile-likelihood q0 on Asimov data built from the sideband fit
  plus the expected signal (mu = 1), per category and for all categories together.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from iminuit import Minuit
from scipy import special, stats

from ..config import MassWindow


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
    gradient: Callable[..., np.ndarray]  # (m, params, low, high): d density / d params, [n_params, *m.shape]


def _bernstein(order: int) -> BackgroundFunction:
    # Bernstein coefficients -> power-series coefficients in t: C(n,i) t^i (1-t)^(n-i) expanded
    # once here, so a density is one Horner evaluation (the fits call it ~10^5 times).
    i, k = np.meshgrid(np.arange(order + 1), np.arange(order + 1))
    to_powers = np.where(k >= i, special.comb(order, i) * special.comb(order - i, k - i) * (-1.0) ** (k - i), 0.0)

    def density(m, p, low, high):
        coeffs = np.concatenate(([1.0], np.asarray(p, dtype=np.float64) ** 2))  # the first fixed: normalisation is separate
        return np.polynomial.polynomial.polyval(_t(m, low, high), to_powers @ coeffs)

    def gradient(m, p, low, high):  # coefficient j + 1 is p_j^2
        return np.polynomial.polynomial.polyval(_t(m, low, high), to_powers[:, 1:] * (2 * np.asarray(p, float)))

    return BackgroundFunction(f"bernstein{order}", order, density, tuple([0.8] * order), gradient)


def _exppoly(m, p, lo, hi):
    x = _x(m, lo, hi)
    return np.exp(sum(c * x ** (i + 1) for i, c in enumerate(p)))


def _exppoly_gradient(m, p, lo, hi):
    x = _x(m, lo, hi)
    return np.stack([x ** (i + 1) for i in range(len(p))]) * _exppoly(m, p, lo, hi)


def _powerlaw(m, p, lo, hi):
    return (np.asarray(m) / lo) ** p[0]


FAMILIES: dict[str, BackgroundFunction] = {
    "exponential": BackgroundFunction("exponential", 1, _exppoly, (-0.5,), _exppoly_gradient),
    "exppoly2": BackgroundFunction("exppoly2", 2, _exppoly, (-0.5, 0.0), _exppoly_gradient),
    "powerlaw": BackgroundFunction("powerlaw", 1, _powerlaw, (-3.0,),
                                   lambda m, p, lo, hi: (np.log(np.asarray(m) / lo) * _powerlaw(m, p, lo, hi))[None]),
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
    shape = family_shape(family, params, edges)
    if not np.isfinite(shape).all():
        return shape, np.zeros((fn.n_params, len(shape)))
    with np.errstate(all="ignore"):
        integrals = bin_integrals(lambda m: fn.density(m, params, edges[0], edges[-1]), edges)
        derivatives = bin_integrals(lambda m: fn.gradient(m, params, edges[0], edges[-1]), edges)
    total = integrals.sum()
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

    def shape(self, edges: np.ndarray, mass: float | None = None) -> np.ndarray:
        """Fraction of the signal per bin, optionally moved to another Higgs mass."""
        p = dict(self.params)
        if mass is not None:
            p["mu"] = mass
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
    chi2: float
    ndf: int
    p_value: float
    converged: bool

    @property
    def chi2_ndf(self) -> float:
        """chi2 per degree of freedom."""
        return self.chi2 / self.ndf if self.ndf > 0 else float("nan")

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


def pearson_chi2(observed: np.ndarray, expected: np.ndarray, edges: np.ndarray, mask: np.ndarray,
                 width: float) -> tuple[float, int]:
    """Pearson chi2 and the number of bins used, after merging to ``width`` GeV bins inside ``mask``."""
    group = np.floor((edges[:-1] - edges[0]) / width + 1e-9).astype(int)
    chi2, n = 0.0, 0
    for g in np.unique(group):
        sel = (group == g) & mask
        if sel.sum() < (group == g).sum():
            continue  # merged bin overlaps the excluded window
        o, e = observed[sel].sum(), expected[sel].sum()
        if e > 0:
            chi2 += (o - e) ** 2 / e
            n += 1
    return chi2, n


def fit_background(counts: np.ndarray, edges: np.ndarray, family: str, mask: np.ndarray, gof_width: float
                   ) -> BackgroundFit:
    """Binned Poisson likelihood fit of a background family to counts in the masked bins.

    Goodness of fit: Pearson chi2 on ``gof_width`` GeV bins inside the mask.
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
    minuit = Minuit(nll, start_norm, *fn.start, grad=gradient, name=names)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits["norm"] = (0, None)
    _minimise(minuit, with_errors=True)
    params = [float(minuit.values[f"p{i}"]) for i in range(fn.n_params)]
    fit = BackgroundFit(family, params, float(minuit.values["norm"]), float(minuit.errors["norm"]), 0.0, 0, 1.0,
                        bool(minuit.valid))
    chi2, n = pearson_chi2(counts, fit.expected(edges), edges, mask, gof_width)
    fit.chi2, fit.ndf = chi2, n - (fn.n_params + 1)
    fit.p_value = float(stats.chi2.sf(chi2, fit.ndf)) if fit.ndf > 0 else float("nan")
    return fit


# --------------------------------------------------------------------------- spurious signal


@dataclass
class SpuriousSignal:
    family: str
    max_abs_signal: float            # max over the m_H scan of |S| fitted to the template
    max_zeta: float                  # max of zeta = max(|S| - 2 Delta_MC, 0), the relaxed criterion
    delta_mc: float                  # the template's statistical uncertainty on S where zeta is largest
    max_relative_to_expected: float  # max zeta / expected signal
    max_relative_to_error: float     # max zeta / the signal's statistical uncertainty in data
    passed: bool
    scan: list[dict[str, float]] = field(default_factory=list)


def _fit_signal_yield(cost: Callable[[np.ndarray], float], slope: Callable[[np.ndarray], np.ndarray], errordef: float,
                      total: float, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                      with_error: bool = True) -> tuple[float, float]:
    """(signal yield, its error) minimising ``cost`` of the expected S+B counts per bin (``slope``: its derivative
    by each bin's expectation); S may go negative.

    Without ``with_error`` the error is MIGRAD's estimate (HESSE skipped: the bias toys need the value only).
    """
    fn = FAMILIES[family]
    shape_at = _ShapeAt(family, edges)

    def objective(s, norm, *params):
        return cost(s * signal_shape + norm * shape_at(params)[0])

    def gradient(s, norm, *params):
        shape, derivatives = shape_at(params)
        g = slope(s * signal_shape + norm * shape)
        return np.concatenate(([signal_shape @ g, shape @ g], norm * (derivatives @ g)))

    names = ["s", "norm"] + [f"p{i}" for i in range(fn.n_params)]
    minuit = Minuit(objective, 0.0, max(total, 1.0), *fn.start, grad=gradient, name=names)
    minuit.errordef = errordef
    _minimise(minuit, with_error)
    return float(minuit.values["s"]), float(minuit.errors["s"])


def fit_s_plus_b_poisson(counts: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                         with_error: bool = True) -> tuple[float, float]:
    """(signal yield, its error) of a binned Poisson S+B fit; S may go negative."""
    def nll(expected: np.ndarray) -> float:
        return 1e30 if (expected <= 0).any() else _poisson_nll(counts, expected)

    return _fit_signal_yield(nll, lambda expected: _poisson_nll_slope(counts, expected), Minuit.LIKELIHOOD,
                             float(counts.sum()), edges, family, signal_shape, with_error)


def fit_s_plus_b_chi2(values: np.ndarray, variance: np.ndarray, edges: np.ndarray, family: str,
                      signal_shape: np.ndarray) -> tuple[float, float]:
    """(signal yield, its error) of an S+B chi2 fit to a weighted template with its own bin variances.

    The error is the template's statistical uncertainty on the fitted signal, Delta_MC.  The
    variances must be positive (``Template.fit_variance`` floors empty bins at one event).
    """
    def chi2(expected: np.ndarray) -> float:
        value = float(np.sum((values - expected) ** 2 / variance))
        return value if np.isfinite(value) else 1e30

    def slope(expected: np.ndarray) -> np.ndarray:
        g = -2.0 * (values - expected) / variance
        return np.where(np.isfinite(g), g, 0.0)

    return _fit_signal_yield(chi2, slope, Minuit.LEAST_SQUARES, float(values.sum()), edges, family, signal_shape)


def spurious_signal(template: np.ndarray, variance: np.ndarray, edges: np.ndarray, family: str,
                    signal: SignalModel, expected_signal: float, data_signal_error: float,
                    masses: tuple[float, ...], fraction_of_signal: float = 0.10,
                    fraction_of_error: float = 0.20) -> SpuriousSignal:
    """ATLAS spurious-signal test on a background-only template at the data's yield.

    S+B fits over the m_H scan give S(m_H) and the template's own uncertainty Delta_MC(m_H);
    zeta = max(|S| - 2 Delta_MC, 0).  Pass: max zeta below ``fraction_of_signal`` of the expected
    signal or below ``fraction_of_error`` of the signal's statistical uncertainty in data.  For a
    template with statistics to spare Delta_MC is small and zeta is |S|.
    """
    scan = []
    for mass in masses:
        s, delta = fit_s_plus_b_chi2(template, variance, edges, family, signal.shape(edges, mass))
        scan.append({"m_H": float(mass), "signal": s, "delta_mc": delta, "zeta": max(abs(s) - 2 * delta, 0.0)})
    worst = max(scan, key=lambda x: x["zeta"])
    rel_expected = worst["zeta"] / expected_signal if expected_signal > 0 else float("inf")
    rel_error = worst["zeta"] / data_signal_error if data_signal_error > 0 else float("inf")
    passed = bool(rel_expected < fraction_of_signal or rel_error < fraction_of_error)
    return SpuriousSignal(family, max(abs(x["signal"]) for x in scan), worst["zeta"], worst["delta_mc"],
                          rel_expected, rel_error, passed, scan)


def f_test_probability(low: BackgroundFit, high: BackgroundFit) -> float:
    """Fisher F-test of a higher-order fit against a lower-order one: probability that the chi2 gain is chance."""
    extra = low.ndf - high.ndf
    if extra <= 0 or high.ndf <= 0 or high.chi2 <= 0:
        return 1.0
    f_value = ((low.chi2 - high.chi2) / extra) / (high.chi2 / high.ndf)
    return float(stats.f.sf(f_value, extra, high.ndf)) if f_value > 0 else 1.0


def bias_toys(template: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray, toys: int,
              seed: int = 0) -> np.ndarray:
    """Fitted signal in S+B fits (Poisson, the given family) to background-only toys drawn from the template."""
    rng = np.random.default_rng(seed)
    return np.array([fit_s_plus_b_poisson(rng.poisson(template).astype(float), edges, family, signal_shape,
                                          with_error=False)[0] for _ in range(toys)])


# --------------------------------------------------------------------------- S+B, significance


@dataclass
class CategoryModel:
    """Everything one category contributes to the S+B likelihood.

    ``modelling`` is the category's background-modelling uncertainty in events (the larger of the
    chosen function's spurious signal and its toys' mean bias): the likelihood then carries a
    signal-shaped background term theta x modelling x (signal shape), theta Gaussian-constrained
    to 0 +/- 1, as ATLAS H->yy analyses carry the spurious signal.  0: no such term.
    """

    name: str
    observed: np.ndarray      # data counts (blinded: Asimov)
    signal: np.ndarray        # expected signal per bin at mu = 1
    resonant: np.ndarray      # expected resonant (non-ttH Higgs) background per bin, fixed
    family: str
    start: BackgroundFit
    modelling: float = 0.0    # width of the spurious-signal term, events
    _shapes: _ShapeAt | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def parameters(self) -> list[str]:
        """This category's nuisance parameters, in likelihood order: norm, theta (with a modelling term), shape."""
        return ["norm"] + ["theta"] * (self.modelling > 0) + [f"p{j}" for j in range(FAMILIES[self.family].n_params)]

    def start_values(self) -> list[float]:
        """Starting values of ``parameters``: the sideband fit, theta = 0."""
        return [self.start.norm] + [0.0] * (self.modelling > 0) + list(self.start.params)

    def _terms(self, edges: np.ndarray, mu: float, values) -> tuple[np.ndarray, np.ndarray, float]:
        """(expected counts, their derivatives by (mu, *values) [1 + n, bins], the constraint's -log)."""
        norm, theta = values[0], (values[1] if self.modelling > 0 else 0.0)
        shape, derivatives = self._shape_at(edges)(values[1 + (self.modelling > 0):])
        spurious = self.modelling * self.signal / self.signal.sum()
        expected = mu * self.signal + self.resonant
        if self.modelling > 0:
            expected = expected + theta * spurious
        expected = expected + norm * shape
        rows = [self.signal, shape] + [spurious] * (self.modelling > 0) + list(norm * derivatives)
        return expected, np.stack(rows), 0.5 * theta**2

    def _shape_at(self, edges: np.ndarray) -> _ShapeAt:
        if self._shapes is None or self._shapes.edges is not edges:
            self._shapes = _ShapeAt(self.family, edges)
        return self._shapes

    def nll(self, edges: np.ndarray, mu: float, values) -> float:
        """-log L of this category at signal strength mu and its nuisance ``values``, constraint included."""
        expected, _, penalty = self._terms(edges, mu, values)
        return _poisson_nll(self.observed, expected) + penalty

    def nll_gradient(self, edges: np.ndarray, mu: float, values) -> np.ndarray:
        """d nll / d (mu, *values)."""
        expected, derivatives, _ = self._terms(edges, mu, values)
        gradient = derivatives @ _poisson_nll_slope(self.observed, expected)
        if self.modelling > 0:
            gradient[2] += values[1]  # the constraint 0.5 theta^2
        return gradient


def fit_signal_strength(categories: list[CategoryModel], edges: np.ndarray, fix_mu: float | None = None
                        ) -> tuple[float, float, float]:
    """Simultaneous fit with a common mu: returns (mu, mu error, minimum NLL)."""
    names, start, slices = ["mu"], [1.0], []
    for i, cat in enumerate(categories):
        slices.append(slice(len(names), len(names) + len(cat.parameters)))
        names += [f"{p}_{i}" for p in cat.parameters]
        start += cat.start_values()

    def nll(*args):
        return sum(cat.nll(edges, args[0], args[part]) for cat, part in zip(categories, slices, strict=True))

    def gradient(*args):
        out = np.zeros(len(args))
        for cat, part in zip(categories, slices, strict=True):
            g = cat.nll_gradient(edges, args[0], args[part])
            out[0] += g[0]
            out[part] += g[1:]
        return out

    minuit = Minuit(nll, *start, grad=gradient, name=names)
    minuit.errordef = Minuit.LIKELIHOOD
    for i in range(len(categories)):
        minuit.limits[f"norm_{i}"] = (0, None)
    if fix_mu is not None:
        minuit.values["mu"] = fix_mu
        minuit.fixed["mu"] = True
    _minimise(minuit, with_errors=fix_mu is None)
    return float(minuit.values["mu"]), float(minuit.errors["mu"]), float(minuit.fval)


def profile_crossing(categories: list[CategoryModel], edges: np.ndarray, start: float, nll_min: float,
                     target: float, direction: float, scale: float) -> float:
    """The mu beyond ``start`` (in ``direction``) where 2 (NLL(mu) - nll_min) reaches ``target``, the
    other parameters profiled.  Robust where HESSE is not (near-degenerate background parameters)."""
    from scipy import optimize

    def excess(mu: float) -> float:
        return 2.0 * (fit_signal_strength(categories, edges, fix_mu=mu)[2] - nll_min) - target

    step = max(abs(scale), 1e-2)
    while excess(start + direction * step) < 0:
        step *= 2.0
    return float(optimize.brentq(excess, start, start + direction * step, xtol=1e-3))


def expected_significance(categories: list[CategoryModel], edges: np.ndarray) -> dict[str, float]:
    """Discovery significance sqrt(q0), the fitted mu and its profile-likelihood error (half the 68% interval)."""
    mu, hesse_error, nll_free = fit_signal_strength(categories, edges)
    _, _, nll_zero = fit_signal_strength(categories, edges, fix_mu=0.0)
    q0 = max(2.0 * (nll_zero - nll_free), 0.0) if mu > 0 else 0.0
    up = profile_crossing(categories, edges, mu, nll_free, 1.0, +1.0, hesse_error)
    down = profile_crossing(categories, edges, mu, nll_free, 1.0, -1.0, hesse_error)
    return {"significance": math.sqrt(q0), "mu": mu, "mu_error": 0.5 * (up - down)}


def expected_upper_limit(categories: list[CategoryModel], edges: np.ndarray, cl: float = 0.95) -> float:
    """Median expected upper limit on mu (CLs, asymptotic; Cowan et al. 2011) on background-only Asimov data.

    With background-only Asimov data the median limit solves q_mu,A(mu) = Phi^-1(1 - (1 - cl)/2)^2,
    q_mu,A = 2 (NLL(mu) - NLL(mu_hat = 0)), the shape parameters profiled.
    """
    background_only = [dataclasses.replace(c, observed=c.start.expected(edges) + c.resonant) for c in categories]
    target = stats.norm.ppf(1 - (1 - cl) / 2) ** 2
    _, sigma, best = fit_signal_strength(background_only, edges)  # mu_hat = 0 on these data
    return profile_crossing(background_only, edges, 0.0, best, target, +1.0, 2.0 * np.sqrt(target) * sigma)


def expected_results(categories: list[CategoryModel], edges: np.ndarray) -> dict[str, float]:
    """Expected significance, mu with its error and the median expected 95% CL limit on mu."""
    return {**expected_significance(categories, edges), "upper_limit": expected_upper_limit(categories, edges)}


def without_modelling(categories: list[CategoryModel]) -> list[CategoryModel]:
    """The same categories without their background-modelling terms (statistical uncertainty only)."""
    return [dataclasses.replace(c, modelling=0.0) for c in categories]


def asimov(background: np.ndarray, signal: np.ndarray, resonant: np.ndarray, mu: float = 1.0) -> np.ndarray:
    """Asimov data: the expectation itself."""
    return background + mu * signal + resonant


def asimov_significance(s: float, b: float) -> float:
    """Counting-experiment Asimov significance sqrt(2((s+b) ln(1+s/b) - s))."""
    if b <= 0 or s <= 0:
        return 0.0
    return math.sqrt(2 * ((s + b) * math.log1p(s / b) - s))
