"""Export the statistical model as a pyhf (HistFactory JSON) workspace.

One channel per category with the m_yy bins.  Samples: ``signal`` (ttH MC, normfactor ``mu``),
``resonant`` (other Higgs modes, fixed), ``background`` (the chosen sideband fit evaluated per
bin, with a free normalisation ``bkg_norm_<category>``), ``background_shape_<k>`` (the shape
linearised around the sideband fit: per shape parameter its derivative, scaled to one standard
deviation of the data, with a free normfactor ``bkg_shape_<category>_<k>`` starting at 0, so pyhf
profiles the background shape as the own fit does) and ``spurious_signal``: the category's
background-modelling uncertainty as a signal-shaped term, zero at nominal, with a histosys
``spurious_signal_<category>`` of +/- the modelling uncertainty (piecewise-linear interpolation,
so the term is exactly theta x width x signal shape, theta Gaussian-constrained as in the own
fit; ``fits.CategoryModel``).  The histograms' systematic variations
become modifiers of the MC samples: weight variations as ``normsys``, object variations as
``histosys``.  HistFactory has no analytic functions, so the shape parameters enter linearised
(exact to first order around the sideband fit).  Observations are the Asimov data (blinded) or
the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..output import MASS_HISTOGRAM
from . import fits
from .fit_analysis import (
    WITH_MODELLING,
    WITHOUT_MODELLING,
    category_inputs,
    category_slice,
    chosen_background,
    datasets_by_role,
)

SPURIOUS_SAMPLE = "spurious_signal"
SHAPE_SAMPLE = "background_shape"


def _modifiers(h, datasets, category: str, nominal: np.ndarray) -> list[dict]:
    mods = []
    systematics = [s for s in h.axes["systematic"] if s.endswith("_up")]
    for up_name in systematics:
        base = up_name[: -len("_up")]
        up, _ = category_slice(h, datasets, "TI", category, up_name)
        down, _ = category_slice(h, datasets, "TI", category, f"{base}_down")
        if up.sum() == 0 and down.sum() == 0:
            continue
        total = nominal.sum()
        if np.allclose(up, nominal * up.sum() / total) and np.allclose(down, nominal * down.sum() / total):
            mods.append({"name": base, "type": "normsys", "data": {"hi": float(up.sum() / total),
                                                                   "lo": float(down.sum() / total)}})
        else:
            mods.append({"name": base, "type": "histosys", "data": {"hi_data": up.tolist(), "lo_data": down.tolist()}})
    return mods


def build_workspace(output: dict, fit_result: dict, unblind: bool = False) -> dict:
    """The HistFactory JSON specification for every fitted category."""
    h = output["histograms"][MASS_HISTOGRAM]
    by_role = datasets_by_role(output)
    channels, observations = [], []
    for record in fit_result["categories"]:
        if not record.get("chosen_family"):  # no acceptable function: not in the statistical model
            continue
        category = record["category"]
        inputs = category_inputs(output, category)
        edges = inputs["edges"]
        background = chosen_background(record, edges)
        signal = inputs["signal"]
        samples = [
            {"name": "signal", "data": signal.tolist(),
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}, *_modifiers(h, by_role["signal"], category, signal)]},
            {"name": "background", "data": background.tolist(),
             "modifiers": [{"name": f"bkg_norm_{category}", "type": "normfactor", "data": None}]},
            *background_shape_samples(category, record, edges, background),
        ]
        if inputs["resonant"].sum() > 0:
            samples.append({"name": "resonant", "data": inputs["resonant"].tolist(),
                            "modifiers": _modifiers(h, by_role["resonant"], category, inputs["resonant"])})
        width = record["modelling_uncertainty"]["events"]
        if width > 0:
            samples.append(spurious_signal_sample(category, width * signal / signal.sum()))
        observed = inputs["data_ti"] if unblind else fits.asimov(background, signal, inputs["resonant"])
        channels.append({"name": category, "samples": samples})
        observations.append({"name": category, "data": np.asarray(observed, dtype=float).tolist()})
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


def background_shape_samples(category: str, record: dict, edges: np.ndarray, background: np.ndarray) -> list[dict]:
    """The chosen function's shape linearised around its sideband fit: per shape parameter the derivative of
    the expected background, scaled so that a normfactor of 1 moves it by one standard deviation of the data
    (sum g^2 / b = 1), with a free normfactor starting at 0."""
    family = record["chosen_family"]
    fit = record["sideband_fits"][family]
    samples = []
    for k, value in enumerate(fit["params"]):
        step = 1e-3 * max(1.0, abs(value))
        shifted = [[*fit["params"][:k], value + sign * step, *fit["params"][k + 1:]] for sign in (1, -1)]
        derivative = fit["norm"] * (fits.family_shape(family, shifted[0], edges)
                                    - fits.family_shape(family, shifted[1], edges)) / (2 * step)
        scale = float(np.sqrt(np.sum(derivative**2 / np.maximum(background, 1e-9))))
        if scale > 0:
            samples.append({"name": f"{SHAPE_SAMPLE}_{k}", "data": (derivative / scale).tolist(),
                            "modifiers": [{"name": f"bkg_shape_{category}_{k}", "type": "normfactor", "data": None}]})
    return samples


def spurious_signal_sample(category: str, term: np.ndarray) -> dict:
    """The signal-shaped modelling term of a category: zero at nominal, +/- ``term`` at theta = +/-1."""
    return {"name": SPURIOUS_SAMPLE, "data": [0.0] * len(term),
            "modifiers": [{"name": f"{SPURIOUS_SAMPLE}_{category}", "type": "histosys",
                           "data": {"hi_data": term.tolist(), "lo_data": (-term).tolist()}}]}


def without_spurious_signal(spec: dict) -> dict:
    """The workspace without its modelling terms (statistical uncertainty and systematics only)."""
    import pyhf

    if not any(s["name"] == SPURIOUS_SAMPLE for c in spec["channels"] for s in c["samples"]):
        return spec
    return dict(pyhf.Workspace(spec).prune(samples=[SPURIOUS_SAMPLE]))


def pyhf_cross_check(spec: dict, limit_guess: float = 1.0) -> dict[str, float]:
    """Expected significance and median expected 95% CL upper limit on mu from the workspace (pyhf, asymptotics).

    The discovery test (q0) runs on the workspace's observations (Asimov with mu = 1 when
    blinded); the limit is where pyhf's CLs (qtilde) on background-only Asimov data built from the
    model itself crosses 5%.  log CLs is nearly linear in mu, so secant steps from ``limit_guess``
    find it to 0.1% in three or four hypotests (pyhf's own ``upper_limit`` scans every band of the
    expected limit and costs five times as long); bisection where the secant does not converge.
    """
    import pyhf
    from scipy import optimize, stats

    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    p0 = float(pyhf.infer.hypotest(0.0, workspace.data(model), model, test_stat="q0"))
    pars = model.config.suggested_init()
    pars[model.config.poi_index] = 0.0
    background_only = model.expected_data(pars)

    def log_excess(mu: float) -> float:
        return math.log(max(float(pyhf.infer.hypotest(mu, background_only, model, test_stat="qtilde")), 1e-300) / 0.05)

    root = optimize.root_scalar(log_excess, x0=limit_guess, x1=1.05 * limit_guess, method="secant",
                                xtol=1e-3 * limit_guess, maxiter=8)
    if root.converged and root.root > 0:
        limit = root.root
    else:
        low, high = 0.5 * limit_guess, 2.0 * limit_guess
        while log_excess(low) < 0:
            low *= 0.5
        while log_excess(high) > 0:
            high *= 2.0
        limit = optimize.brentq(log_excess, low, high, xtol=1e-3 * limit_guess)
    return {"significance": float(stats.norm.isf(p0)), "upper_limit": float(limit), "p0": p0}


def compare_with_pyhf(fit_result: dict, spec: dict) -> dict:
    """pyhf's combined figures next to the project's own fit, with and without the modelling terms."""
    own = fit_result.get("combined") or {}
    if not spec["channels"] or not own:
        return {}
    workspaces = {WITH_MODELLING: spec, WITHOUT_MODELLING: without_spurious_signal(spec)}
    out: dict = {"note": "pyhf: background shape fixed to the sideband fit (free normalisation), systematics as "
                         "modifiers; own fit: background shape parameters free, no systematics"}
    for key, workspace in workspaces.items():
        mine = {k: own[key][k] for k in ("significance", "upper_limit")}
        theirs = pyhf_cross_check(workspace, mine["upper_limit"])
        out[key] = {"pyhf": theirs, "own": mine,
                    "relative_difference": {k: theirs[k] / mine[k] - 1 if mine[k] else float("nan") for k in mine}}
    return out


def write_workspace(spec: dict, path: str | Path) -> Path:
    """Write the workspace JSON."""
    return write_text(path, json.dumps(spec) + "\n")
