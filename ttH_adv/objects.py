"""Physics objects in GeV with Lorentz-vector behaviour, built from the schema's records.

The schema keeps the file's units; here every energy-like field named in the branch map's
``energy_fields`` is multiplied by ``energy_scale`` (MeV -> GeV for Open Data), and photons,
jets, electrons and muons (split by ``lep_type``) become ``PtEtaPhiELorentzVector`` records
for interactive work, or flat ``Collection`` columns for the processor (``collections``).
Only the fields asked for are read, so unused branches never leave the file.
"""

from __future__ import annotations

from collections.abc import Iterable

import awkward as ak
from coffea.nanoevents.methods import vector

from .columns import Collection
from .config import BranchMap

KINEMATIC_FIELDS = ("pt", "eta", "phi", "energy")
PHOTON_FIELDS = (*KINEMATIC_FIELDS, "is_tight", "ptcone30", "etcone20")
JET_FIELDS = (*KINEMATIC_FIELDS, "btag", "jvt")
LEPTON_FIELDS = (*KINEMATIC_FIELDS, "charge", "type", "is_tight", "ptcone30", "etcone20")


def to_gev(record: ak.Array, branch_map: BranchMap, fields: Iterable[str],
           with_name: str | None = "PtEtaPhiELorentzVector") -> ak.Array:
    """Zip ``fields`` of a raw record into a GeV record (Lorentz vector if it has pt/eta/phi/energy)."""
    scale = branch_map.energy_scale
    columns = {f: (record[f] * scale if f in branch_map.energy_fields else record[f]) for f in fields}
    return ak.zip(columns, with_name=with_name, behavior=vector.behavior)


def photons(events: ak.Array, branch_map: BranchMap, extra: Iterable[str] = ()) -> ak.Array:
    """Photons in GeV: kinematics plus the identification and isolation fields."""
    return to_gev(events.photon, branch_map, (*PHOTON_FIELDS, *extra))


def jets(events: ak.Array, branch_map: BranchMap, extra: Iterable[str] = ()) -> ak.Array:
    """Jets in GeV with b-tag score and JVT."""
    return to_gev(events.jet, branch_map, (*JET_FIELDS, *extra))


def leptons(events: ak.Array, branch_map: BranchMap, extra: Iterable[str] = ()) -> ak.Array:
    """Electrons and muons together, in GeV."""
    return to_gev(events.lepton, branch_map, (*LEPTON_FIELDS, *extra))


def split_leptons(leps: ak.Array, branch_map: BranchMap) -> tuple[ak.Array, ak.Array]:
    """(electrons, muons) from the combined lepton collection by ``type``."""
    return leps[leps["type"] == branch_map.electron_type], leps[leps["type"] == branch_map.muon_type]


def met(events: ak.Array, branch_map: BranchMap, extra: Iterable[str] = ()) -> ak.Array:
    """Missing transverse momentum (et, phi) in GeV."""
    return to_gev(events.met, branch_map, ("et", "phi", *extra), with_name=None)


BASE_FIELDS = {"photon": PHOTON_FIELDS, "jet": JET_FIELDS, "lepton": LEPTON_FIELDS}


def collections(events: ak.Array, branch_map: BranchMap,
                fields: dict[str, Iterable[str]] = BASE_FIELDS) -> dict[str, Collection]:
    """Photons, jets and leptons as flat GeV columns (the processor's fast path), reading ``fields[name]``."""
    return {
        "photons": Collection.from_record(events.photon, fields["photon"], branch_map),
        "jets": Collection.from_record(events.jet, fields["jet"], branch_map),
        "leptons": Collection.from_record(events.lepton, fields["lepton"], branch_map),
    }
