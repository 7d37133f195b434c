"""The S+B likelihood of the categories: signal strength, systematics, modelling terms, significance, limits.

Per category the expected counts per bin are

    mu * signal(theta) + sum_r resonant_r(theta) + t * width * (signal shape) + norm * f(m | p)

with ``f`` the chosen background family (norm and p free per category), ``t`` the category's
background-modelling term (its spurious-signal width, Gaussian-constrained) and ``theta`` the
systematic nuisance parameters, shared by name across samples and categories and each
Gaussian-constrained to 0 +/- 1.  A sample's expectation under its modifiers follows HistFactory
(pyhf's default interpolation), so the pyhf workspace (``ttH_adv.stats.workspace``) carries the
very same model:

* ``normsys``: a factor hi^theta (theta >= 0) or lo^-theta (theta < 0) -- exponential interpolation;
* ``histosys``: nominal + theta (hi - nominal) (theta >= 0) or theta (nominal - lo) (theta < 0) --
  piecewise linear, per bin;
* additive terms first, then the factors.

The expected significance is sqrt(q0) on Asimov data (blinded) or data, the upper limit the
median expected CLs limit (asymptotic, Cowan et al. 2011) on background-only Asimov data; both
profile every nuisance parameter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from iminuit import Minuit
from scipy import stats

from .fit_results import Figures, Impact
from .fits import FAMILIES, BackgroundFit, _minimise, _poisson_nll, _poisson_nll_slope, _ShapeAt

SIGNAL = "signal"
NORMSYS, HISTOSYS = "normsys", "histosys"


@dataclass(frozen=True)
class Modifier:
    """One systematic's effect on one sample: a factor (``normsys``: hi, lo) or per-bin counts (``histosys``)."""

    name: str                 # the nuisance parameter (shared by name)
    kind: str                 # NORMSYS | HISTOSYS
    sample: str               # SIGNAL or a resonant part's name
    hi: float | np.ndarray    # at theta = +1: the factor, or the sample's expected counts per bin
    lo: float | np.ndarray    # at theta = -1


class _Modifiers:
    """A category's modifiers as arrays over (sample, shared nuisance parameter), for fast evaluation.

    Samples: 0 the signal, then the resonant parts.  A sample's counts at theta are
    (nominal + sum_p theta_p delta_p) x exp(sum_p theta_p slope_p), delta and slope taking their
    theta >= 0 or theta < 0 values (``Modifier``)."""

    def __init__(self, model: CategoryModel, nuisances: list[str]) -> None:
        names = [SIGNAL, *model.parts()]
        self.nominal = np.stack([model.signal, *model.parts().values()]).astype(np.float64)
        samples, params, bins = len(names), len(nuisances), len(model.signal)
        self.log_hi, self.log_lo = np.zeros((samples, params)), np.zeros((samples, params))
        self.delta_hi, self.delta_lo = np.zeros((samples, params, bins)), np.zeros((samples, params, bins))
        self.shape_params = set()
        for m in model.modifiers:
            s, p = names.index(m.sample), nuisances.index(m.name)
            if m.kind == HISTOSYS:
                self.delta_hi[s, p] += np.asarray(m.hi) - self.nominal[s]
                self.delta_lo[s, p] += self.nominal[s] - np.asarray(m.lo)
                self.shape_params.add(p)
            else:
                self.log_hi[s, p] += math.log(m.hi)
                self.log_lo[s, p] -= math.log(m.lo)
        self.shape_params = sorted(self.shape_params)

    def counts(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(counts [samples, bins], factors [samples], log slopes [samples, params], additive deltas
        [samples, shape params, bins]) at theta."""
        up = theta >= 0
        slopes = np.where(up, self.log_hi, self.log_lo)
        factors = np.exp(slopes @ theta)
        added = self.nominal
        deltas = np.zeros((len(self.nominal), 0, self.nominal.shape[1]))
        if self.shape_params:
            p = self.shape_params
            deltas = np.where(up[p][None, :, None], self.delta_hi[:, p], self.delta_lo[:, p])
            added = added + np.matmul(theta[p], deltas)
        return added * factors[:, None], factors, slopes, deltas


@dataclass
class CategoryModel:
    """Everything one category contributes to the S+B likelihood.

    ``modelling`` is the category's background-modelling uncertainty in events (the larger of the
    chosen function's spurious signal and its toys' mean bias): the likelihood then carries a
    signal-shaped background term t x modelling x (signal shape), t Gaussian-constrained to 0 +/- 1,
    as ATLAS H->yy analyses carry the spurious signal.  0: no such term.  ``resonant_parts`` split
    the resonant background by dataset where modifiers act on some of them (default: one part).
    """

    name: str
    observed: np.ndarray      # data counts (blinded: Asimov)
    signal: np.ndarray        # expected signal per bin at mu = 1
    resonant: np.ndarray      # expected resonant (non-ttH Higgs) background per bin, all parts
    family: str
    start: BackgroundFit
    modelling: float = 0.0    # width of the spurious-signal term, events
    modifiers: tuple[Modifier, ...] = ()
    resonant_parts: dict[str, np.ndarray] = field(default_factory=dict)
    _shapes: _ShapeAt | None = field(default=None, init=False, repr=False, compare=False)

    def parts(self) -> dict[str, np.ndarray]:
        """The resonant background's parts (one, "resonant", unless split)."""
        return self.resonant_parts or {"resonant": self.resonant}

    @property
    def nuisances(self) -> list[str]:
        """The shared nuisance parameters this category's modifiers act through."""
        return sorted({m.name for m in self.modifiers})

    @property
    def parameters(self) -> list[str]:
        """This category's own parameters, in likelihood order: norm, t (with a modelling term), shape."""
        return ["norm"] + ["theta"] * (self.modelling > 0) + [f"p{j}" for j in range(FAMILIES[self.family].n_params)]

    def start_values(self) -> list[float]:
        """Starting values of ``parameters``: the sideband fit, t = 0."""
        return [self.start.norm] + [0.0] * (self.modelling > 0) + list(self.start.params)

    def _shape_at(self, edges: np.ndarray) -> _ShapeAt:
        if self._shapes is None or self._shapes.edges is not edges:
            self._shapes = _ShapeAt(self.family, edges)
        return self._shapes

    def terms(self, edges: np.ndarray, mu: float, own, theta: np.ndarray, modifiers: _Modifiers
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected counts, their derivatives by (mu, *own) [1 + n, bins], by each shared nuisance [params, bins])."""
        with_term = self.modelling > 0
        norm, t = own[0], (own[1] if with_term else 0.0)
        shape, derivatives = self._shape_at(edges)(own[1 + with_term:])
        counts, factors, slopes, deltas = modifiers.counts(theta)
        weight = np.ones(len(counts))
        weight[0] = mu  # the signal scales with mu, the resonant parts do not
        expected = weight @ counts + norm * shape
        by_nuisance = (slopes * weight[:, None]).T @ counts  # normsys: d counts / d theta = counts x slope
        if modifiers.shape_params:
            by_nuisance[modifiers.shape_params] += np.tensordot(weight * factors, deltas, axes=1)
        spurious = self.modelling * self.signal / self.signal.sum() if with_term else None
        if with_term:
            expected = expected + t * spurious
        rows = [counts[0], shape] + [spurious] * with_term + list(norm * derivatives)
        return expected, np.stack(rows), by_nuisance


class Likelihood:
    """The categories' joint -log L: mu, the shared nuisance parameters, then each category's own."""

    def __init__(self, categories: list[CategoryModel], edges: np.ndarray) -> None:
        self.categories, self.edges = categories, edges
        self.nuisances = sorted({n for c in categories for n in c.nuisances})
        self.modifiers = [_Modifiers(c, self.nuisances) for c in categories]
        self.names, self.start, self.slices = ["mu", *self.nuisances], [1.0] + [0.0] * len(self.nuisances), []
        for i, cat in enumerate(categories):
            self.slices.append(slice(len(self.names), len(self.names) + len(cat.parameters)))
            self.names += [f"{p}_{i}" for p in cat.parameters]
            self.start += cat.start_values()
        self.shared = slice(1, 1 + len(self.nuisances))

    def evaluate(self, x: np.ndarray, with_gradient: bool = True) -> tuple[float, np.ndarray | None]:
        """(-log L with the constraints, its gradient by x) at x."""
        x = np.asarray(x, dtype=np.float64)
        theta = x[self.shared]
        total, out = 0.5 * float(theta @ theta), np.zeros(len(x)) if with_gradient else None
        if with_gradient:
            out[self.shared] = theta
        for cat, part, modifiers in zip(self.categories, self.slices, self.modifiers, strict=True):
            own = x[part]
            expected, derivatives, by_nuisance = cat.terms(self.edges, x[0], own, theta, modifiers)
            total += _poisson_nll(cat.observed, expected) + (0.5 * own[1] ** 2 if cat.modelling > 0 else 0.0)
            if with_gradient:
                slope = _poisson_nll_slope(cat.observed, expected)
                g = derivatives @ slope
                out[0] += g[0]
                out[part] += g[1:]
                if cat.modelling > 0:
                    out[part.start + 1] += own[1]
                out[self.shared] += by_nuisance @ slope
        return total, out

    def fisher_diagonal(self, *x) -> np.ndarray:
        """The diagonal of -log L's expected Hessian at x: sum over bins of (d expected / d x)^2 / expected, plus the
        constraints'.  MIGRAD's starting matrix (``g2``): without it MIGRAD spends ~5 evaluations of -log L per
        parameter estimating one; its updates and the minimum it reports are its own."""
        x = np.asarray(x, dtype=np.float64)
        theta = x[self.shared]
        out = np.zeros(len(x))
        out[self.shared] = 1.0
        for cat, part, modifiers in zip(self.categories, self.slices, self.modifiers, strict=True):
            expected, derivatives, by_nuisance = cat.terms(self.edges, x[0], x[part], theta, modifiers)
            inverse = 1.0 / np.maximum(expected, 1e-12)
            own = np.square(derivatives) @ inverse
            out[0] += own[0]
            out[part] += own[1:]
            if cat.modelling > 0:
                out[part.start + 1] += 1.0
            out[self.shared] += np.square(by_nuisance) @ inverse
        return out

    def nll(self, *x) -> float:
        """-log L, the constraints included."""
        return self.evaluate(np.asarray(x), with_gradient=False)[0]

    def gradient(self, *x) -> np.ndarray:
        """d nll / d x."""
        return self.evaluate(np.asarray(x))[1]

    def profile_fit(self, fixed: dict[str, float], start: list[float] | None = None) -> tuple[np.ndarray, float]:
        """(every parameter, minimum -log L) with the ``fixed`` parameters held, from ``start`` if given."""
        minuit = self.fit(fixed, start=start)
        return np.array(minuit.values), float(minuit.fval)

    def minuit(self, fixed: dict[str, float] | None = None, start: list[float] | None = None) -> Minuit:
        """A Minuit of this likelihood from ``start`` (the sideband fits by default), norms bounded at 0, the
        ``fixed`` parameters held at their values."""
        minuit = Minuit(self.nll, *(self.start if start is None else start), grad=self.gradient,
                        g2=self.fisher_diagonal, name=self.names)
        minuit.errordef = Minuit.LIKELIHOOD
        for i in range(len(self.categories)):
            minuit.limits[f"norm_{i}"] = (0, None)
        for name, value in (fixed or {}).items():
            minuit.values[name] = value
            minuit.fixed[name] = True
        return minuit

    def fit(self, fixed: dict[str, float] | None = None, with_errors: bool = False,
            start: list[float] | None = None) -> Minuit:
        """The minimised likelihood (HESSE with ``with_errors``), from ``start`` if given."""
        return _minimise(self.minuit(fixed, start), with_errors)


def fit_signal_strength(categories: list[CategoryModel], edges: np.ndarray, fix_mu: float | None = None
                        ) -> tuple[float, float, float]:
    """Simultaneous fit with a common mu: returns (mu, mu error (0 at fixed mu), minimum NLL)."""
    likelihood = Likelihood(categories, edges)
    if fix_mu is not None:
        return float(fix_mu), 0.0, likelihood.profile_fit({"mu": fix_mu})[1]
    minuit = likelihood.fit(with_errors=True)
    return float(minuit.values["mu"]), float(minuit.errors["mu"]), float(minuit.fval)


class Profile:
    """The likelihood profiled in mu: the free fit once, then fits at fixed mu started from it."""

    def __init__(self, categories: list[CategoryModel], edges: np.ndarray) -> None:
        self.likelihood = Likelihood(categories, edges)
        self.best = self.likelihood.fit(with_errors=True)
        self.mu, self.error, self.minimum = (float(self.best.values["mu"]), float(self.best.errors["mu"]),
                                             float(self.best.fval))
        self.start = list(self.best.values)

    def q(self, mu: float) -> float:
        """2 (NLL(mu) - NLL(mu_hat)), every other parameter profiled."""
        return 2.0 * (self.likelihood.profile_fit({"mu": mu}, self.start)[1] - self.minimum)

    def crossing(self, target: float, direction: float, origin: float | None = None) -> float:
        """The mu beyond ``origin`` (mu_hat by default) in ``direction`` where q (from ``origin``) reaches ``target``.

        sqrt(q) is nearly linear in mu: secant steps on sqrt(q) - sqrt(target), from HESSE's estimate,
        converge in two or three fits; bisection takes over where a step would leave the bracket."""
        origin = self.mu if origin is None else origin
        offset = self.q(origin) if origin != self.mu else 0.0
        goal = math.sqrt(target)

        def distance(mu: float) -> float:
            return math.sqrt(max(self.q(mu) - offset, 0.0)) - goal

        scale = max(abs(self.error), 1e-2)
        low, high = origin, None                         # the last points below and above the crossing
        x = origin + direction * scale * goal
        previous, f_previous = origin, -goal
        for _ in range(40):
            fx = distance(x)
            if abs(fx) < 1e-4:
                return float(x)
            if fx < 0:
                low = x
            else:
                high = x
            step = x - fx * (x - previous) / (fx - f_previous) if fx != f_previous else None
            previous, f_previous = x, fx
            inside = high is None or (step is not None and min(low, high) < step < max(low, high))
            if step is None or not np.isfinite(step) or (step - origin) * direction <= 0 or not inside:
                step = 0.5 * (low + high) if high is not None else origin + 2.0 * (x - origin)
            if high is not None and abs(high - low) < 1e-5 * scale:
                return float(0.5 * (low + high))
            x = step
        return float(x)


def expected_significance(categories: list[CategoryModel], edges: np.ndarray, profile_error: bool = True
                          ) -> dict[str, float]:
    """Discovery significance sqrt(q0), the fitted mu and its error: half the profile-likelihood 68% interval
    (HESSE's without ``profile_error``)."""
    profile = Profile(categories, edges)
    q0 = max(profile.q(0.0), 0.0) if profile.mu > 0 else 0.0
    error = profile.error
    if profile_error:
        error = 0.5 * (profile.crossing(1.0, +1.0) - profile.crossing(1.0, -1.0))
    return {"significance": math.sqrt(q0), "mu": profile.mu, "mu_error": error}


def background_only(categories: list[CategoryModel], edges: np.ndarray) -> list[CategoryModel]:
    """The categories with background-only Asimov data (the sideband fits plus the resonant background)."""
    return [dataclasses.replace(c, observed=c.start.expected(edges) + c.resonant) for c in categories]


def expected_upper_limit(categories: list[CategoryModel], edges: np.ndarray, cl: float = 0.95) -> float:
    """Median expected upper limit on mu (CLs, asymptotic; Cowan et al. 2011) on background-only Asimov data.

    With background-only Asimov data the median limit solves q_mu,A(mu) = Phi^-1(1 - (1 - cl)/2)^2,
    q_mu,A = 2 (NLL(mu) - NLL(mu_hat = 0)), every nuisance parameter profiled.
    """
    target = stats.norm.ppf(1 - (1 - cl) / 2) ** 2
    return Profile(background_only(categories, edges), edges).crossing(target, +1.0, origin=0.0)


def expected_results(categories: list[CategoryModel], edges: np.ndarray, profile_error: bool = True,
                     limit: bool = True) -> Figures:
    """Expected significance, mu with its error and (with ``limit``) the median expected 95% CL limit on mu."""
    return Figures(**expected_significance(categories, edges, profile_error),
                   upper_limit=expected_upper_limit(categories, edges) if limit else None)


def without_modelling(categories: list[CategoryModel]) -> list[CategoryModel]:
    """The same categories without their background-modelling terms."""
    return [dataclasses.replace(c, modelling=0.0) for c in categories]


def without_systematics(categories: list[CategoryModel]) -> list[CategoryModel]:
    """The same categories without their systematic modifiers."""
    return [dataclasses.replace(c, modifiers=()) for c in categories]


def impacts(categories: list[CategoryModel], edges: np.ndarray, refitted: int = 10) -> list[Impact]:
    """Each nuisance parameter's impact on mu, largest first (the modelling terms as ``modelling_<category>``).

    From the fit's covariance, cov(mu, theta) / sigma_theta, the shift of mu for theta moved by its
    error in the linear approximation; the ``refitted`` largest also by refits of mu with the
    parameter held at its fitted value +/- its fitted error (``impact_up``, ``impact_down``)."""
    likelihood = Likelihood(categories, edges)
    best = likelihood.fit(with_errors=True)
    mu, covariance, start = float(best.values["mu"]), best.covariance, list(best.values)
    named = {name: name for name in likelihood.nuisances}
    named.update({f"theta_{i}": f"modelling_{c.name}" for i, c in enumerate(categories) if c.modelling > 0})
    found = []
    for parameter, label in named.items():
        value, error = float(best.values[parameter]), float(best.errors[parameter])
        linear = float(covariance[("mu", parameter)]) / error if error > 0 else 0.0
        found.append(Impact(label, parameter, value, error, linear, abs(linear)))
    found.sort(key=lambda r: -r.impact)
    for r in found[:refitted]:
        r.impact_up, r.impact_down = (float(likelihood.profile_fit({r.name: r.pull + sign * r.constraint}, start)[0][0])
                                      - mu for sign in (1, -1))
        r.impact = max(abs(r.impact_up), abs(r.impact_down))
    return sorted(found, key=lambda r: -r.impact)


def asimov(background: np.ndarray, signal: np.ndarray, resonant: np.ndarray, mu: float = 1.0) -> np.ndarray:
    """Asimov data: the expectation itself."""
    return background + mu * signal + resonant
