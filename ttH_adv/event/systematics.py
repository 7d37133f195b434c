"""Systematic variations as a registry of kinds: each configured systematic becomes named up/down shifts.

``SYSTEMATIC_KINDS`` maps a kind (a section of ``systematics:`` in the configuration) to the
function that turns one entry into its variations, as HiggsDNA registers its corrections:

* ``weight``: the event weight times (1 +/- relative) -- a scale factor's relative uncertainty;
* ``branches``: per-event weights from branches, weight x up/nominal (and down/nominal);
* ``correctionlib``: a correction from a correctionlib JSON file (the format CMS and ATLAS coffea
  analyses use), evaluated per event on the classifier features of the selected events, with
  its "systematic" input set to the up, down and nominal values: weight x up/nominal;
* ``object``: a collection's pT and energy shifted by +/- its ``pt_syst`` field, the whole
  selection re-run on the shifted objects.

A new kind is a function ``(name, settings) -> list[Variation]`` added to the registry plus a
section in ``SystematicsConfig``.  A variation carries how it is applied, so the processor never
asks which kind it is: a weight variation its ``factor`` (a per-event multiplier of the nominal
weight, ``Variation.weight_factor``; the selection is not re-run), an object variation its
``apply`` (objects -> varied objects, e.g. ``ObjectShift``, with the fields it reads; the
selection re-runs on them).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    SYSTEMATIC_MODES,
    AnalysisConfig,
    BranchSystematic,
    CorrectionlibSystematic,
    ObjectSystematic,
    WeightSystematic,
)
from ..errors import ConfigError
from .columns import Collection, event_column

NOMINAL = "nominal"
DIRECTIONS = (("up", 1), ("down", -1))
SYSTEMATIC_INPUT = "systematic"  # the correctionlib input that takes "up" / "down" / "nominal"


@dataclass(frozen=True)
class RelativeFactor:
    relative: float

    def __call__(self, direction: int, events: Any, selection: Any) -> float:
        return 1.0 + direction * self.relative


@dataclass(frozen=True)
class BranchFactor:
    settings: BranchSystematic

    def __call__(self, direction: int, events: Any, selection: Any) -> np.ndarray:
        nominal = event_column(events, self.settings.nominal).astype(np.float64)
        varied = event_column(events, self.settings.up if direction > 0 else self.settings.down).astype(np.float64)
        return np.divide(varied, nominal, out=np.ones_like(nominal), where=nominal != 0)


@dataclass(frozen=True)
class CorrectionlibFactor:
    settings: CorrectionlibSystematic

    def __call__(self, direction: int, events: Any, selection: Any) -> np.ndarray:
        """up/nominal (or down/nominal) for the selected events, 1 for the others."""
        s = self.settings
        correction = _correction(s.file, s.correction)
        passed = np.flatnonzero(selection.passed)
        factor = np.ones(len(selection.passed))
        if len(passed):
            def evaluate(value: str) -> np.ndarray:
                args = [value if name == SYSTEMATIC_INPUT else np.asarray(selection.features[name], np.float64)
                        for name in s.inputs]
                return np.asarray(correction.evaluate(*args), np.float64)

            nominal, varied = evaluate(s.nominal), evaluate(s.up if direction > 0 else s.down)
            factor[passed] = np.divide(varied, nominal, out=np.ones_like(nominal), where=nominal != 0)
        return factor


@functools.cache
def _correction(file: str, name: str):
    """One correction of a correctionlib file, loaded once per process."""
    import correctionlib

    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"systematics.correctionlib: file not found: {file}")
    corrections = correctionlib.CorrectionSet.from_file(str(path))
    names = sorted(corrections.keys())
    if name not in names:
        raise ConfigError(f"systematics.correctionlib: no correction {name!r} in {file} (has {names})")
    return corrections[name]


@dataclass(frozen=True)
class ObjectShift:
    """One collection's pT and energy moved by ``direction`` x its ``pt_syst`` (applied to the event's objects)."""

    collection: str               # photon | jet | lepton: the objects' attribute is its plural
    direction: int
    fields: tuple[str, ...] = ("pt_syst",)  # what it reads beyond the nominal objects

    def __call__(self, objects: Any) -> Any:
        """The objects (a dataclass of collections) with this collection shifted."""
        attr = f"{self.collection}s"
        return dataclasses.replace(objects, **{attr: shift_collection(getattr(objects, attr), self.direction)})


@dataclass(frozen=True)
class Variation:
    """One named variation, carrying how it is applied: a weight factor, or ``apply`` to the objects (neither: nominal)."""

    name: str                     # e.g. "jet_energy_scale_up"
    direction: int = 0            # +1 up, -1 down
    factor: Callable | None = None  # weight variations: (direction, events, selection) -> multiplier
    apply: Callable | None = None   # object variations: objects -> varied objects (with ``fields`` to read)

    @property
    def is_nominal(self) -> bool:
        """Neither reweights nor shifts anything."""
        return self.factor is None and self.apply is None

    @property
    def keeps_selection(self) -> bool:
        """The objects are not shifted, so the nominal selection stands (nominal and weight variations)."""
        return self.apply is None

    @property
    def is_weight(self) -> bool:
        """A weight variation: the nominal selection with another weight."""
        return self.keeps_selection and not self.is_nominal

    def weight_factor(self, events: Any = None, selection: Any = None) -> np.ndarray | float:
        """Multiplier of the nominal event weight (per event, or one number)."""
        return 1.0 if self.factor is None else self.factor(self.direction, events, selection)

    def varied(self, objects: Any) -> Any:
        """The objects this variation selects on (the nominal ones unless it applies a shift)."""
        return objects if self.apply is None else self.apply(objects)

    @property
    def object_fields(self) -> tuple[str, ...]:
        """Object fields the variation reads beyond the nominal ones (MC only)."""
        return getattr(self.apply, "fields", ())


def _relative_weight(name: str, settings: WeightSystematic) -> list[Variation]:
    return [Variation(f"{name}_{tag}", d, factor=RelativeFactor(settings.relative)) for tag, d in DIRECTIONS]


def _branch_weight(name: str, settings: BranchSystematic) -> list[Variation]:
    return [Variation(f"{name}_{tag}", d, factor=BranchFactor(settings)) for tag, d in DIRECTIONS]


def _correctionlib_weight(name: str, settings: CorrectionlibSystematic) -> list[Variation]:
    from .features import all_feature_names

    unknown = [i for i in settings.inputs if i != SYSTEMATIC_INPUT and i not in all_feature_names()]
    if unknown:
        raise ConfigError(f"systematics.correctionlib.{name}: unknown input(s) {unknown}: a feature name "
                          f"(ttH_adv.event.features) or {SYSTEMATIC_INPUT!r}")
    _correction(settings.file, settings.correction)  # a missing file or correction fails before any event
    return [Variation(f"{name}_{tag}", d, factor=CorrectionlibFactor(settings)) for tag, d in DIRECTIONS]


def _object_shift(name: str, settings: ObjectSystematic) -> list[Variation]:
    return [Variation(f"{name}_{tag}", d, apply=ObjectShift(settings.collection, d)) for tag, d in DIRECTIONS]


SYSTEMATIC_KINDS: dict[str, Callable[[str, Any], list[Variation]]] = {
    "weight": _relative_weight,
    "branches": _branch_weight,
    "correctionlib": _correctionlib_weight,
    "object": _object_shift,
}


def variations(config: AnalysisConfig, mode: str) -> list[Variation]:
    """Nominal plus the variations a ``--systematics`` mode asks for (weights: those that keep the selection)."""
    if mode not in SYSTEMATIC_MODES:
        raise ValueError(f"--systematics must be one of {SYSTEMATIC_MODES}, got {mode!r}")
    out = [Variation(NOMINAL)]
    if mode == "none":
        return out
    for kind, expand in SYSTEMATIC_KINDS.items():
        for name, settings in getattr(config.systematics, kind).items():
            out += expand(name, settings)
    return out if mode == "all" else [v for v in out if v.keeps_selection]


def weight_branches(config: AnalysisConfig, mode: str) -> list[str]:
    """The per-event weight branches the ``branches`` systematics of a mode read (MC only)."""
    if mode == "none":
        return []
    return [b for s in config.systematics.branches.values() for b in (s.nominal, s.up, s.down)]


def shift_collection(objects: Collection, direction: int) -> Collection:
    """Shift pT and energy by direction x pt_syst (absolute 1-sigma, same units as pT)."""
    scale = 1.0 + direction * objects.pt_syst / objects.pt
    return objects.with_columns(pt=objects.pt * scale, energy=objects.energy * scale)
