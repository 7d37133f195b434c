"""Score categories that maximise the combined expected significance (``tth-adv categorize``).

Per channel, boundaries are searched on a grid of signal-score quantiles.  For a category the
expected signal s is the ttH MC (TI) yield in the signal window (``mass.blind_low``-``blind_high``); the background b is the
continuum in the window, estimated from the TI data sidebands of that category times the
window/sideband ratio of an exponential fitted to the channel's TI data sidebands, plus the
resonant Higgs MC in the window.  Each category's Asimov significance
Z = sqrt(2((s+b) ln(1+s/b) - s)) is summed in quadrature; a category needs at least
``min_sideband`` data events in the sidebands.  The search is exhaustive over the grid.  A channel
whose sidebands cannot support the number of categories asked for gets the most they can
(``fewer_than_requested`` in categories.json, and a warning).
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ..atomic import write_text
from ..config import MassWindow
from ..dump import read_dump
from ..errors import TthAdvError
from .fits import asimov_significance

log = logging.getLogger(__name__)


def window_over_sideband(mass: np.ndarray, window: MassWindow) -> float:
    """Expected window/sideband ratio for an exponential fitted (unbinned ML) to sideband masses."""
    from scipy import optimize

    low, high, blind = window.low, window.high, window.blind
    side = mass[~window.in_window(mass)]

    def integral(a: float, lo: float, hi: float) -> float:
        return (np.exp(a * hi) - np.exp(a * lo)) / a if abs(a) > 1e-9 else hi - lo

    def nll(a: float) -> float:
        norm = integral(a, low, blind[0]) + integral(a, blind[1], high)
        return -np.sum(a * side) + len(side) * np.log(norm)

    a = optimize.minimize_scalar(nll, bounds=(-0.2, 0.05), method="bounded").x
    return integral(a, *blind) / (integral(a, low, blind[0]) + integral(a, blind[1], high))


def _interval_sums(scores: np.ndarray, values: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cumulative sums of values for score >= each candidate (candidates descending)."""
    # index = how many candidates lie strictly above the score: 0 means score >= candidates[0]
    index = np.searchsorted(-candidates, -scores, side="left")
    sums = np.bincount(index, weights=values, minlength=len(candidates) + 1)
    return np.cumsum(sums)[: len(candidates)]


def _between(cumulative: np.ndarray, combo: tuple[int, ...]) -> np.ndarray:
    """Per-category sums from cumulative sums at the chosen boundary indices."""
    take = np.asarray(combo)
    previous = np.r_[-1, take[:-1]]
    return cumulative[take] - np.where(previous >= 0, cumulative[np.maximum(previous, 0)], 0.0)


def optimise_channel(score_s, weight_s, score_r, weight_r, score_d, mass_d, mass_r, mass_s, n_categories: int,
                     min_sideband: int, window: MassWindow, grid: int = 25) -> dict:
    """Best descending boundaries for one channel, with as many categories as asked for or, where its
    sidebands cannot support them, as many as they can (``requested`` says how many were asked for)."""
    for n in range(n_categories, 0, -1):
        best = optimise_boundaries(score_s, weight_s, score_r, weight_r, score_d, mass_d, mass_r, mass_s, n,
                                   min_sideband, window, grid)
        if best is not None:
            return {**best, "requested": n_categories}
    raise TthAdvError(f"not even 1 category with >= {min_sideband} sideband events ({int(np.sum(~window.in_window(mass_d)))} "
                      "in the whole channel): lower --min-sideband")


def optimise_boundaries(score_s, weight_s, score_r, weight_r, score_d, mass_d, mass_r, mass_s, n_categories: int,
                        min_sideband: int, window: MassWindow, grid: int = 25) -> dict | None:
    """Best descending boundaries for exactly ``n_categories`` (exhaustive over the grid); None if none has
    ``min_sideband`` sideband events in every category."""
    ratio = window_over_sideband(mass_d, window)
    candidates = np.unique(np.quantile(score_s, np.linspace(0.02, 0.98, grid)))[::-1]
    # Cumulative (score >= candidate) sums of each ingredient; a category is a difference of two.
    signal = _interval_sums(score_s, weight_s * window.in_window(mass_s), candidates)
    sideband = _interval_sums(score_d, (~window.in_window(mass_d)).astype(float), candidates)
    resonant = _interval_sums(score_r, weight_r * window.in_window(mass_r), candidates)
    best = {"z": -1.0}
    for combo in itertools.combinations(range(len(candidates)), n_categories):
        side = _between(sideband, combo)
        if np.any(side < min_sideband):
            continue
        zs = [asimov_significance(s_, b_) for s_, b_ in
              zip(_between(signal, combo), side * ratio + _between(resonant, combo), strict=True)]
        z = float(np.sqrt(np.sum(np.square(zs))))
        if z > best["z"]:
            best = {"z": z, "boundaries": [float(candidates[i]) for i in combo], "category_z": zs,
                    "sideband_events": side.tolist()}
    if best["z"] < 0:
        return None
    best["window_over_sideband"] = ratio
    return best


def categorize(dump_dir: str | Path, n_categories: dict[str, int], window: MassWindow, min_sideband: int = 10,
               score_column: str = "score") -> dict:
    """Optimise boundaries per channel from a dump that carries scores (``score_column``: one model's of several)."""
    table = read_dump(dump_dir, columns=[score_column, "mgg", "weight", "role", "region", "channel", "systematic"])
    table = table.filter(pc.and_(pc.equal(table["systematic"], "nominal"), pc.equal(table["region"], "TI")))
    frame = table.to_pandas().rename(columns={score_column: "score"})
    result = {}
    for channel, n in n_categories.items():
        rows = frame[frame.channel == channel]
        sig = rows[rows.role == "signal"]
        res = rows[rows.role == "resonant"]
        data = rows[rows.role == "data"]
        if len(sig) == 0 or len(data) == 0:
            raise TthAdvError(f"channel {channel!r}: no signal or no data rows in {dump_dir}")
        result[channel] = optimise_channel(sig.score.to_numpy(), sig.weight.to_numpy(), res.score.to_numpy(),
                                           res.weight.to_numpy(), data.score.to_numpy(), data.mgg.to_numpy(),
                                           res.mgg.to_numpy(), sig.mgg.to_numpy(), n, min_sideband, window)
        if len(result[channel]["boundaries"]) < n:
            log.warning("channel %s: its sidebands support %d of the %d categories asked for (>= %d sideband "
                        "events each)", channel, len(result[channel]["boundaries"]), n, min_sideband)
    combined = float(np.sqrt(sum(r["z"] ** 2 for r in result.values())))
    fewer = {c: {"requested": r["requested"], "found": len(r["boundaries"])} for c, r in result.items()
             if len(r["boundaries"]) < r["requested"]}
    return {"categories": {c: r["boundaries"] for c, r in result.items()}, "details": result,
            "combined_z": combined, "min_sideband": min_sideband, "fewer_than_requested": fewer}


def write_categories(result: dict, path: str | Path) -> Path:
    """categories.json, readable by ``tth-adv run --categories``."""
    return write_text(path, json.dumps(result, indent=1) + "\n")


def read_categories(path: str | Path) -> dict[str, list[float]]:
    """The boundaries of a categories.json."""
    path = Path(path)
    if not path.is_file():
        raise TthAdvError(f"categories file not found: {path}")
    data = json.loads(path.read_text())
    if "categories" not in data:
        raise TthAdvError(f"{path} has no 'categories' key (write it with 'tth-adv categorize')")
    return data["categories"]
