"""Sideband fits, spurious-signal test, signal model, S+B fits and significance (iminuit, scipy).

Conventions (README, "Fits"):

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

from .config import MassWindow


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
    density: Callable[..., np.ndarray]  # (m, params, low, high): unnormalised, positive
    start: tuple[float, ...]


def _bernstein(order: int) -> BackgroundFunction:
    # Bernstein coefficients -> power-series coefficients in t: C(n,i) t^i (1-t)^(n-i) expanded
    # once here, so a density is one Horner evaluation (the fits call it ~10^5 times).
    i, k = np.meshgrid(np.arange(order + 1), np.arange(order + 1))
    to_powers = np.where(k >= i, special.comb(order, i) * special.comb(order - i, k - i) * (-1.0) ** (k - i), 0.0)

    def density(m, p, low, high):
        coeffs = np.concatenate(([1.0], np.asarray(p, dtype=np.float64) ** 2))  # the first fixed: normalisation is separate
        return np.polynomial.polynomial.polyval(_t(m, low, high), to_powers @ coeffs)

    return BackgroundFunction(f"bernstein{order}", order, density, tuple([0.8] * order))


FAMILIES: dict[str, BackgroundFunction] = {
    "exponential": BackgroundFunction("exponential", 1, lambda m, p, lo, hi: np.exp(p[0] * _x(m, lo, hi)), (-0.5,)),
    "exppoly2": BackgroundFunction(
        "exppoly2", 2, lambda m, p, lo, hi: np.exp(p[0] * _x(m, lo, hi) + p[1] * _x(m, lo, hi) ** 2), (-0.5, 0.0)),
    "powerlaw": BackgroundFunction("powerlaw", 1, lambda m, p, lo, hi: (np.asarray(m) / lo) ** p[0], (-3.0,)),
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

    def nll(*args):
        norm, params = args[0], args[1:]
        expected = norm * family_shape(family, params, edges)
        return _poisson_nll(observed, expected[mask])

    names = ["norm"] + [f"p{i}" for i in range(fn.n_params)]
    minuit = Minuit(nll, start_norm, *fn.start, name=names)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits["norm"] = (0, None)
    minuit.migrad()
    minuit.hesse()
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


def _fit_signal_yield(cost: Callable[[np.ndarray], float], errordef: float, total: float, edges: np.ndarray,
                      family: str, signal_shape: np.ndarray, with_error: bool = True) -> tuple[float, float]:
    """(signal yield, its error) minimising ``cost`` of the expected S+B counts per bin; S may go negative.

    Without ``with_error`` the error is MIGRAD's estimate (HESSE skipped: the bias toys need the value only).
    """
    fn = FAMILIES[family]

    def objective(s, norm, *params):
        return cost(s * signal_shape + norm * family_shape(family, params, edges))

    names = ["s", "norm"] + [f"p{i}" for i in range(fn.n_params)]
    minuit = Minuit(objective, 0.0, max(total, 1.0), *fn.start, name=names)
    minuit.errordef = errordef
    minuit.migrad()
    if with_error:
        minuit.hesse()
    return float(minuit.values["s"]), float(minuit.errors["s"])


def fit_s_plus_b_poisson(counts: np.ndarray, edges: np.ndarray, family: str, signal_shape: np.ndarray,
                         with_error: bool = True) -> tuple[float, float]:
    """(signal yield, its error) of a binned Poisson S+B fit; S may go negative."""
    def nll(expected: np.ndarray) -> float:
        return 1e30 if (expected <= 0).any() else _poisson_nll(counts, expected)

    return _fit_signal_yield(nll, Minuit.LIKELIHOOD, float(counts.sum()), edges, family, signal_shape, with_error)


def fit_s_plus_b_chi2(values: np.ndarray, variance: np.ndarray, edges: np.ndarray, family: str,
                      signal_shape: np.ndarray) -> tuple[float, float]:
    """(signal yield, its error) of an S+B chi2 fit to a weighted template with its own bin variances.

    The error is the template's statistical uncertainty on the fitted signal, Delta_MC.  The
    variances must be positive (``Template.fit_variance`` floors empty bins at one event).
    """
    def chi2(expected: np.ndarray) -> float:
        value = float(np.sum((values - expected) ** 2 / variance))
        return value if np.isfinite(value) else 1e30

    return _fit_signal_yield(chi2, Minuit.LEAST_SQUARES, float(values.sum()), edges, family, signal_shape)


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

    @property
    def parameters(self) -> list[str]:
        """This category's nuisance parameters, in likelihood order: norm, theta (with a modelling term), shape."""
        return ["norm"] + ["theta"] * (self.modelling > 0) + [f"p{j}" for j in range(FAMILIES[self.family].n_params)]

    def start_values(self) -> list[float]:
        """Starting values of ``parameters``: the sideband fit, theta = 0."""
        return [self.start.norm] + [0.0] * (self.modelling > 0) + list(self.start.params)

    def nll(self, edges: np.ndarray, mu: float, values) -> float:
        """-log L of this category at signal strength mu and its nuisance ``values``, constraint included."""
        norm, rest = values[0], values[1:]
        expected = mu * self.signal + self.resonant
        penalty = 0.0
        if self.modelling > 0:
            theta, rest = rest[0], rest[1:]
            expected = expected + theta * self.modelling * self.signal / self.signal.sum()
            penalty = 0.5 * theta**2
        return _poisson_nll(self.observed, expected + norm * family_shape(self.family, rest, edges)) + penalty


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

    minuit = Minuit(nll, *start, name=names)
    minuit.errordef = Minuit.LIKELIHOOD
    for i in range(len(categories)):
        minuit.limits[f"norm_{i}"] = (0, None)
    if fix_mu is not None:
        minuit.values["mu"] = fix_mu
        minuit.fixed["mu"] = True
    minuit.migrad()
    if fix_mu is None:
        minuit.hesse()
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
