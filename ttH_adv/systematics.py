"""Systematic variations: expand the configuration's registry into named up/down shifts.

Weight variations multiply the event weight by (1 +/- relative); object variations shift a
collection's pT and energy by +/- its ``pt_syst`` field and the whole selection is re-run on
the shifted objects.  Adding a systematic is a few lines of YAML (``systematics:``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .columns import Collection
from .config import AnalysisConfig

NOMINAL = "nominal"
MODES = ("none", "weights", "all")


@dataclass(frozen=True)
class Variation:
    name: str                     # e.g. "jet_energy_scale_up"
    kind: str                     # nominal | weight | object
    direction: int = 0            # +1 up, -1 down
    relative: float = 0.0         # weight variations
    collection: str | None = None  # object variations

    def weight_factor(self) -> float:
        """Multiplier of the nominal event weight."""
        return 1.0 + self.direction * self.relative if self.kind == "weight" else 1.0


def variations(config: AnalysisConfig, mode: str) -> list[Variation]:
    """Nominal plus the variations a ``--systematics`` mode asks for."""
    if mode not in MODES:
        raise ValueError(f"--systematics must be one of {MODES}, got {mode!r}")
    out = [Variation(NOMINAL, "nominal")]
    if mode in ("weights", "all"):
        for name, spec in config.systematics.weight.items():
            out += [Variation(f"{name}_{tag}", "weight", d, relative=spec.relative) for tag, d in (("up", 1), ("down", -1))]
    if mode == "all":
        for name, spec in config.systematics.object.items():
            out += [Variation(f"{name}_{tag}", "object", d, collection=spec.collection)
                    for tag, d in (("up", 1), ("down", -1))]
    return out


def shift_collection(objects: Collection, direction: int) -> Collection:
    """Shift pT and energy by direction x pt_syst (absolute 1-sigma, same units as pT)."""
    scale = 1.0 + direction * objects.pt_syst / objects.pt
    return objects.with_columns(pt=objects.pt * scale, energy=objects.energy * scale)
