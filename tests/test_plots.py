"""Image tests (pytest-mpl) of the figures a physicist puts on a slide: cutflow, a category fit, sculpting.

Baselines live in ``tests/baseline``; regenerate them, after an intended change, with
``python -m pytest tests/test_plots.py --mpl-generate-path=tests/baseline``.  Tolerance: an RMS
difference of 2 (on the 0-255 pixel scale; pytest-mpl's default), enough for anti-aliasing noise
and far below a moved line, label or axis range.  The inputs are fixed numbers, not a processor run.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_mpl")

from ttH_adv.config import load_config  # noqa: E402
from ttH_adv.event.selections import cutflow_steps  # noqa: E402
from ttH_adv.report import plotting
from ttH_adv.stats import fits  # noqa: E402
from ttH_adv.stats.fit_results import CategoryFit  # noqa: E402

WINDOW = load_config().mass
EDGES = WINDOW.edges()
CENTRES = 0.5 * (EDGES[:-1] + EDGES[1:])
COMPARE = {"baseline_dir": "baseline", "tolerance": 2, "savefig_kwargs": {"dpi": 60}}
LUMINOSITY_PB = 46_511.6


def _cutflow_output() -> dict:
    steps = cutflow_steps(("had", "lep"))
    fractions = {"ttH": [1, 0.8, 0.7, 0.62, 0.61, 0.61, 0.5, 0.23, 0.17, 0.11, 0.05, 0.04],
                 "data": [1, 0.6, 0.5, 0.45, 0.23, 0.21, 0.10, 0.004, 0.002, 0.10, 0.004, 0.002],
                 "ggH": [1, 0.7, 0.6, 0.52, 0.51, 0.51, 0.41, 0.0007, 0.0, 0.1, 0.0002, 0.0]}
    return {"cutflow": {name: {s: {"events": int(f * 100_000), "weighted": f} for s, f in zip(steps, values, strict=True)}
                        for name, values in fractions.items()},
            "metadata": {"luminosity_pb": LUMINOSITY_PB}}


def _fit_output_and_record() -> tuple[dict, dict]:
    import hist

    background = 600 * fits.family_shape("exponential", [-0.6], EDGES)
    signal = 4 * fits.normalised_shape(lambda m: fits.dscb(m, 125.0, 1.7, 1.5, 5.0, 1.5, 5.0), EDGES)
    observed = np.random.default_rng(3).poisson(background) * WINDOW.sideband_bins(EDGES)
    h = hist.Hist(hist.axis.StrCategory(["data", "ttH", "ggH"], name="dataset"),
                  hist.axis.StrCategory(["TI", "NTNI"], name="region"), hist.axis.StrCategory(["had_1"], name="category"),
                  hist.axis.StrCategory(["nominal"], name="systematic"),
                  hist.axis.Regular(len(EDGES) - 1, EDGES[0], EDGES[-1], name="mgg"), storage=hist.storage.Weight())
    view = h.view()
    view["value"][0, 0, 0, 0], view["value"][1, 0, 0, 0], view["value"][2, 0, 0, 0] = observed, signal, 0.1 * signal
    record = CategoryFit.from_dict({
        "category": "had_1", "data_ti_sideband": float(observed.sum()), "chosen_family": "exponential",
        "expected_signal": 4.0, "resonant": 0.4,
        "signal_model": {"params": {"mu": 125.0, "sigma": 1.7, "alpha_lo": 1.5, "n_lo": 5.0, "alpha_hi": 1.5,
                                    "n_hi": 5.0}, "chi2_ndf": 1.0},
        "sideband_fits": {"exponential": {"params": [-0.6], "norm": 600.0, "deviance": 17.1, "ndf": 16,
                                          "deviance_ndf": 1.07, "p_value": 0.38, "p_value_from": "asymptotic",
                                          "converged": True}}})
    roles = {"data": "data", "ttH": "signal", "ggH": "resonant"}
    return {"histograms": {"mgg": h}, "metadata": {"luminosity_pb": LUMINOSITY_PB, "roles": roles}}, record


@pytest.mark.mpl_image_compare(**COMPARE)
def test_cutflow_figure():
    fig = plotting.figure_cutflow(_cutflow_output())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["all", "trigger", "two_photons", "relative_pt", "mass_window", "unblinded"]  # sequential only
    low, high = fig.axes[0].get_ylim()
    assert 0 < low < 0.23 and high < 10  # follows the content; no line dives to the bottom of a log axis
    return fig


@pytest.mark.mpl_image_compare(**COMPARE)
def test_category_fit_figure():
    output, record = _fit_output_and_record()
    fig = plotting.figure_category_fit(output, record, WINDOW)
    legend = fig.axes[0].get_legend()
    assert "had_1" in legend.get_title().get_text()
    assert any("exponential" in t.get_text() and "p = 0.38" in t.get_text() for t in legend.get_texts())
    assert fig.axes[0].get_ylim()[0] == 0 and fig.axes[1].get_ylabel() == "Pull"
    return fig


@pytest.mark.mpl_image_compare(**COMPARE)
def test_sculpting_figure():
    rng = np.random.default_rng(5)
    mass = 105 + rng.exponential(25, 20_000)
    mass = mass[mass < 160]
    scores = rng.random(len(mass)) * (1 - 0.3 * np.exp(-0.5 * ((mass - 125) / 5) ** 2))  # slightly sculpting
    fig = plotting.figure_sculpting(scores, mass, 0.5, WINDOW, LUMINOSITY_PB)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("46.5" in t for t in texts) and fig.axes[0].get_ylim()[0] == 0  # luminosity shown; no negative density
    return fig
