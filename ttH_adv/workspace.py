"""Export the statistical model as a pyhf (HistFactory JSON) workspace.

One channel per category with the m_yy bins.  Samples: ``signal`` (ttH MC, normfactor ``mu``),
``resonant`` (other Higgs modes, fixed), ``background`` (the chosen sideband fit evaluated per
bin, with a free normalisation ``bkg_norm_<category>``).  The histograms' systematic variations
become modifiers of the MC samples: weight variations as ``normsys``, object variations as
``histosys``.  The background shape is fixed to its sideband fit: HistFactory has no analytic
functions, which is the usual limitation of this export.  Observations are the Asimov data
(blinded) or the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import fits
from .fit_analysis import category_inputs, category_slice, chosen_background, datasets_by_role


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
    h = output["histograms"]["mgg"]
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
        ]
        if inputs["resonant"].sum() > 0:
            samples.append({"name": "resonant", "data": inputs["resonant"].tolist(),
                            "modifiers": _modifiers(h, by_role["resonant"], category, inputs["resonant"])})
        observed = inputs["data_ti"] if unblind else fits.asimov(background, signal, inputs["resonant"])
        channels.append({"name": category, "samples": samples})
        observations.append({"name": category, "data": np.asarray(observed, dtype=float).tolist()})
    parameters = [{"name": f"bkg_norm_{c['name']}", "bounds": [[0.0, 10.0]], "inits": [1.0]} for c in channels]
    parameters.append({"name": "mu", "bounds": [[0.0, 100.0]], "inits": [1.0]})  # room for a weak category's limit
    return {
        "version": "1.0.0",
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "ttH_yy", "config": {"poi": "mu", "parameters": parameters}}],
    }


def pyhf_cross_check(spec: dict) -> dict[str, float]:
    """Expected significance and median expected 95% CL upper limit on mu from the workspace (pyhf, asymptotics).

    The discovery test (q0) runs on the workspace's observations (Asimov with mu = 1 when
    blinded); the limit (CLs) on background-only Asimov data built from the model itself.
    """
    import pyhf
    from scipy import stats

    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    p0 = float(pyhf.infer.hypotest(0.0, workspace.data(model), model, test_stat="q0"))
    pars = model.config.suggested_init()
    pars[model.config.poi_index] = 0.0
    _, expected = pyhf.infer.intervals.upper_limits.upper_limit(model.expected_data(pars), model, scan=None)
    return {"significance": float(stats.norm.isf(p0)), "upper_limit": float(expected[2]), "p0": p0}


def compare_with_pyhf(fit_result: dict, spec: dict) -> dict:
    """pyhf's combined figures next to the project's own fit, with their relative differences."""
    own = fit_result.get("combined") or {}
    if not spec["channels"] or not own:
        return {}
    theirs = pyhf_cross_check(spec)
    return {"pyhf": theirs, "own": {"significance": own["significance"], "upper_limit": own["upper_limit"]},
            "relative_difference": {k: theirs[k] / own[k] - 1 if own[k] else float("nan")
                                    for k in ("significance", "upper_limit")},
            "note": "pyhf: background shape fixed to the sideband fit (free normalisation), systematics as "
                    "modifiers; own fit: background shape parameters free, no systematics"}


def write_workspace(spec: dict, path: str | Path) -> Path:
    """Write the workspace JSON."""
    path = Path(path)
    path.write_text(json.dumps(spec) + "\n")
    return path
