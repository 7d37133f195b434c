"""The Higgs samples of a category and their systematic modifiers, for the own fit and the pyhf workspace alike.

Every Higgs sample takes the category's signal model (the double-sided Crystal Ball fitted to its
ttH MC) as its m_yy shape, at its own MC yield: the signal (role signal, scaled by mu) and one
resonant part per resonant dataset.  Their modifiers (``ttH_adv.stats.likelihood.Modifier``):

* every ``uncertainties.normalisation`` term, on the samples of its roles or DSIDs: a log-normal
  yield factor (1 + up) / (1 - down);
* with ``uncertainties.from_histograms``, every ``<name>_up`` / ``<name>_down`` variation of the
  histograms' systematic axis (``--systematics all``): the sample's yield ratio as its factor;
* ``signal_mass_scale`` and ``signal_mass_resolution`` (``uncertainties.signal_shape``): the peak
  moved by m x (1 +/- scale) and widened by sigma x (1 +/- resolution), per-bin (histosys) terms.

A name shared by several samples and categories is one nuisance parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import AnalysisConfig, NormalisationUncertainty
from ..output import MASS_HISTOGRAM, category_slice
from .fits import SignalModel
from .likelihood import HISTOSYS, NORMSYS, SIGNAL, Modifier

UP, DOWN = "_up", "_down"
MASS_SCALE, MASS_RESOLUTION = "signal_mass_scale", "signal_mass_resolution"


@dataclass(frozen=True)
class HiggsSamples:
    """A category's Higgs samples: the signal and the resonant parts (per dataset), each at the signal model's shape."""

    signal: np.ndarray
    resonant: dict[str, np.ndarray]
    modifiers: tuple[Modifier, ...]

    @property
    def resonant_total(self) -> np.ndarray:
        """All resonant parts together."""
        return sum(self.resonant.values(), np.zeros_like(self.signal))


def _yield(h, datasets: list[str], category: str, systematic: str = "nominal") -> float:
    """The TI yield of the datasets in a category (0 for those absent)."""
    return float(category_slice(h, datasets, "TI", category, systematic)[0].sum())


def _applies(term: NormalisationUncertainty, role: str, datasets: list[str], dsids: dict[str, int]) -> bool:
    return role in term.roles or any(dsids.get(d) in term.dsids for d in datasets)


def variation_names(h) -> list[str]:
    """The systematics the histograms vary up and down (their base names)."""
    names = [s[: -len(UP)] for s in h.axes["systematic"] if s.endswith(UP)]
    return [n for n in names if f"{n}{DOWN}" in h.axes["systematic"]]


def higgs_samples(output: dict, category: str, signal_model: SignalModel, config: AnalysisConfig,
                  by_role: dict[str, list[str]]) -> HiggsSamples:
    """The signal and resonant samples of a category, their shapes the signal model's, with every modifier."""
    h = output["histograms"][MASS_HISTOGRAM]
    edges = h.axes["mgg"].edges
    settings = config.uncertainties
    dsids = output.get("metadata", {}).get("dsids", {})
    shape = signal_model.shape(edges)
    # (sample, role, its datasets): the signal is one sample whatever its datasets; each resonant dataset its own
    parts = [(SIGNAL, "signal", by_role["signal"])] + [(d, "resonant", [d]) for d in by_role["resonant"]]
    yields = {name: _yield(h, datasets, category) for name, _, datasets in parts}
    parts = [p for p in parts if yields[p[0]] > 0]
    modifiers: list[Modifier] = []
    for sample, role, datasets in parts:
        nominal = yields[sample]
        for name, term in settings.normalisation.items():
            if _applies(term, role, datasets, dsids):
                modifiers.append(Modifier(name, NORMSYS, sample, 1.0 + term.up, 1.0 - term.down))
        if settings.from_histograms:
            for name in variation_names(h):
                hi, lo = (_yield(h, datasets, category, f"{name}{tag}") / nominal for tag in (UP, DOWN))
                if abs(hi - 1) > 1e-9 or abs(lo - 1) > 1e-9:
                    modifiers.append(Modifier(name, NORMSYS, sample, max(hi, 1e-3), max(lo, 1e-3)))
        peak = settings.signal_shape
        for name, size, key in ((MASS_SCALE, peak.mass_scale, "scale"), (MASS_RESOLUTION, peak.mass_resolution, "width")):
            if size > 0:
                hi, lo = (nominal * signal_model.shape(edges, **{key: 1 + sign * size}) for sign in (1, -1))
                modifiers.append(Modifier(name, HISTOSYS, sample, hi, lo))
    resonant = {name: yields[name] * shape for name, role, _ in parts if role == "resonant"}
    signal = yields.get(SIGNAL, 0.0) * shape
    return HiggsSamples(signal, resonant, tuple(modifiers))
