"""Export the statistical model as a pyhf (HistFactory JSON) workspace: the own fit's model, term for term.

One channel per fitted category with the m_yy bins, made from the category's S+B model
(``ttH_adv.stats.likelihood.CategoryModel``).  Samples:

* ``signal``: the Higgs peak at the ttH yield, normfactor ``mu``;
* ``resonant_<dataset>``: each resonant dataset's peak at its yield;
* ``background``: the chosen sideband fit evaluated per bin, with a free normalisation
  ``bkg_norm_<category>``, and ``background_shape_<k>``: the shape linearised around the sideband fit
  (per shape parameter its derivative, scaled to one standard deviation of the data, with a free
  normfactor ``bkg_shape_<category>_<k>`` starting at 0), so pyhf profiles the background shape as the
  own fit does -- HistFactory has no analytic functions, so this is the one place the two differ
  (exact to first order around the sideband fit);
* ``spurious_signal``: the category's background-modelling term, zero at nominal, with a histosys
  ``spurious_signal_<category>`` of +/- its width in the signal's shape (piecewise-linear: exactly
  t x width x signal shape, t Gaussian-constrained, as in the own fit).

Every systematic modifier of the own fit is the same modifier here (normsys: log-normal factors;
histosys: per-bin counts; shared by name across channels).  Observations are the Asimov data
(blinded) or the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import one_line
from . import fits
from .fit_results import Figures, FitResult, HeadlineFigures, PyhfCheck, PyhfComparison
from .likelihood import HISTOSYS, SIGNAL, CategoryModel, Modifier

SPURIOUS_SAMPLE = "spurious_signal"
# The own fit's interpolation (``ttH_adv.stats.likelihood``): exponential normsys, piecewise-linear histosys.
# pyhf's defaults are code4 / code4p (polynomial within +/- 1 sigma): pass these when loading workspace.json.
INTERPOLATION = {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}}
SHAPE_SAMPLE = "background_shape"


def _modifier(m: Modifier) -> dict:
    if m.kind == HISTOSYS:
        return {"name": m.name, "type": "histosys",
                "data": {"hi_data": np.asarray(m.hi, float).tolist(), "lo_data": np.asarray(m.lo, float).tolist()}}
    return {"name": m.name, "type": "normsys", "data": {"hi": float(m.hi), "lo": float(m.lo)}}


def _sample(name: str, data: np.ndarray, modifiers: list[dict]) -> dict:
    return {"name": name, "data": np.asarray(data, float).tolist(), "modifiers": modifiers}


def channel_samples(model: CategoryModel, edges: np.ndarray) -> list[dict]:
    """One category's samples with their modifiers."""
    by_sample = {}
    for m in model.modifiers:
        by_sample.setdefault(m.sample, []).append(_modifier(m))
    background = model.start.expected(edges)
    samples = [_sample("signal", model.signal, [{"name": "mu", "type": "normfactor", "data": None},
                                                *by_sample.get(SIGNAL, [])]),
               _sample("background", background, [{"name": f"bkg_norm_{model.name}", "type": "normfactor",
                                                    "data": None}]),
               *background_shape_samples(model, edges, background)]
    samples += [_sample(f"resonant_{part}", counts, by_sample.get(part, [])) for part, counts in model.parts().items()
                if counts.sum() > 0]
    if model.modelling > 0:
        samples.append(spurious_signal_sample(model.name, model.modelling * model.signal / model.signal.sum()))
    return samples


def build_workspace(models: list[CategoryModel], edges: np.ndarray) -> dict:
    """The HistFactory JSON specification of the categories' S+B models."""
    channels = [{"name": m.name, "samples": channel_samples(m, edges)} for m in models]
    observations = [{"name": m.name, "data": np.asarray(m.observed, dtype=float).tolist()} for m in models]
    parameters = [{"name": f"bkg_norm_{c['name']}", "bounds": [[0.0, 10.0]], "inits": [1.0]} for c in channels]
    parameters += [{"name": m["name"], "bounds": [[-50.0, 50.0]], "inits": [0.0]} for c in channels
                   for s in c["samples"] if s["name"].startswith(SHAPE_SAMPLE) for m in s["modifiers"]]
    parameters.append({"name": "mu", "bounds": [[0.0, 100.0]], "inits": [1.0]})  # room for a weak category's limit
    return {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "ttH_yy", "config": {"poi": "mu", "parameters": parameters}}],
    }


def background_shape_samples(model: CategoryModel, edges: np.ndarray, background: np.ndarray) -> list[dict]:
    """The chosen function's shape linearised around its sideband fit: per shape parameter the derivative of
    the expected background, scaled so that a normfactor of 1 moves it by one standard deviation of the data
    (sum g^2 / b = 1), with a free normfactor starting at 0."""
    family, params, norm = model.family, list(model.start.params), model.start.norm
    samples = []
    for k, value in enumerate(params):
        step = 1e-3 * max(1.0, abs(value))
        shifted = [[*params[:k], value + sign * step, *params[k + 1:]] for sign in (1, -1)]
        derivative = norm * (fits.family_shape(family, shifted[0], edges)
                             - fits.family_shape(family, shifted[1], edges)) / (2 * step)
        scale = float(np.sqrt(np.sum(derivative**2 / np.maximum(background, 1e-9))))
        if scale > 0:
            samples.append(_sample(f"{SHAPE_SAMPLE}_{k}", derivative / scale,
                                   [{"name": f"bkg_shape_{model.name}_{k}", "type": "normfactor", "data": None}]))
    return samples


def spurious_signal_sample(category: str, term: np.ndarray) -> dict:
    """The signal-shaped modelling term of a category: zero at nominal, +/- ``term`` at t = +/-1."""
    return {"name": SPURIOUS_SAMPLE, "data": [0.0] * len(term),
            "modifiers": [{"name": f"{SPURIOUS_SAMPLE}_{category}", "type": "histosys",
                           "data": {"hi_data": term.tolist(), "lo_data": (-term).tolist()}}]}


def statistical_only(spec: dict) -> dict:
    """The workspace without its modelling terms and systematic modifiers (statistical uncertainty only)."""
    kept = {"normfactor"}
    channels = [{"name": c["name"], "samples": [{**s, "modifiers": [m for m in s["modifiers"] if m["type"] in kept]}
                                                for s in c["samples"] if s["name"] != SPURIOUS_SAMPLE]}
                for c in spec["channels"]]
    return {**spec, "channels": channels}


def modifier_counts(spec: dict) -> dict[str, int]:
    """The number of distinct modifiers (normfactors included) per channel."""
    return {c["name"]: len({m["name"] for s in c["samples"] for m in s["modifiers"]}) for c in spec["channels"]}


def pyhf_cross_check(spec: dict, limit_guess: float = 1.0) -> dict[str, float]:
    """Expected significance and median expected 95% CL upper limit on mu from the workspace, by pyhf.

    The discovery test is pyhf's q0 hypotest on the workspace's observations (Asimov with mu = 1 when
    blinded).  The limit is the asymptotic median expected CLs limit on background-only Asimov data
    made by pyhf's model, where sqrt(q_mu,A) = 1.96 (CLs = 2 (1 - Phi(sqrt(q_mu,A))) = 0.05; qtilde and
    q agree there), q_mu,A from pyhf's own maximum-likelihood fits: secant steps on sqrt(q) from
    ``limit_guess`` find it in three or four fits (a CLs hypotest costs several fits per point).
    """
    import copy

    import pyhf
    from scipy import stats

    spec = copy.deepcopy(spec)
    upper = max(100.0, 20.0 * limit_guess)  # room for a weak model's limit
    for p in spec["measurements"][0]["config"]["parameters"]:
        if p["name"] == "mu":
            p["bounds"] = [[0.0, upper]]
    workspace = pyhf.Workspace(spec)
    model = workspace.model(modifier_settings=INTERPOLATION)
    p0 = float(pyhf.infer.hypotest(0.0, workspace.data(model), model, test_stat="q0"))
    pars = model.config.suggested_init()
    pars[model.config.poi_index] = 0.0
    background_only = model.expected_data(pars)
    best = float(pyhf.infer.mle.fit(background_only, model, return_fitted_val=True)[1])
    goal = stats.norm.ppf(0.975)

    def distance(mu: float) -> float:
        twice_nll = float(pyhf.infer.mle.fixed_poi_fit(mu, background_only, model, return_fitted_val=True)[1])
        return math.sqrt(max(twice_nll - best, 0.0)) - goal

    a, fa = 0.0, -goal
    b = limit_guess
    fb = distance(b)
    for _ in range(20):
        if abs(fb) < 1e-4:
            break
        a, fa, b = b, fb, min(max(b - fb * (b - a) / (fb - fa), 1e-3 * limit_guess), upper)  # inside mu's bounds
        fb = distance(b)
    return HeadlineFigures(float(stats.norm.isf(p0)), float(b), p0)


def robust_cross_check(spec: dict, limit_guess: float) -> HeadlineFigures:
    """``pyhf_cross_check`` with pyhf's default optimiser (scipy), or with its minuit optimiser where that fails."""
    import pyhf

    try:
        return pyhf_cross_check(spec, limit_guess)
    except pyhf.exceptions.FailedMinimization:
        backend, optimizer = pyhf.get_backend()
        pyhf.set_backend(backend, pyhf.optimize.minuit_optimizer(tolerance=1e-3))
        try:
            return pyhf_cross_check(spec, limit_guess)
        finally:
            pyhf.set_backend(backend, optimizer)


def _relative(theirs: float, mine: float | None) -> float:
    return theirs / mine - 1 if mine else float("nan")


def pyhf_check(workspace: dict, figures: Figures) -> PyhfCheck:
    """pyhf's figures of one workspace beside the own fit's (or why pyhf's fit failed)."""
    import pyhf

    mine = HeadlineFigures(figures.significance, figures.upper_limit)
    try:
        theirs = robust_cross_check(workspace, mine.upper_limit)
    except pyhf.exceptions.FailedMinimization as exc:  # a cross-check that cannot run is reported
        return PyhfCheck(mine, failed=f"pyhf's fit failed: {one_line(exc)}")
    return PyhfCheck(mine, theirs, HeadlineFigures(_relative(theirs.significance, mine.significance),
                                                   _relative(theirs.upper_limit, mine.upper_limit)))


def compare_with_pyhf(fit_result: FitResult, spec: dict) -> PyhfComparison | None:
    """pyhf's combined figures next to the own fit's, with every uncertainty and statistical only."""
    own = fit_result.combined
    if not spec["channels"] or own is None:
        return None
    return PyhfComparison("one model in both: the same samples, modifiers and constraints; pyhf's background shape "
                          "linearised around the sideband fit, the own fit's the function itself",
                          modifier_counts(spec), pyhf_check(spec, own.all_uncertainties),
                          pyhf_check(statistical_only(spec), own.statistical_only))


def write_workspace(spec: dict, path: str | Path) -> Path:
    """Write the workspace JSON."""
    return write_text(path, json.dumps(spec) + "\n")
