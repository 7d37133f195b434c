"""The DAOD_PHYSLITE reader: coffea's PHYSLITESchema events as the analysis's objects.

PHYSLITE objects are calibrated already.  The branch map of a ``physlite`` format names, per
canonical collection, the PHYSLITE collection (``prefix``: ``Photons``, ``Jets``, ``Electrons``,
``Muons``) and the fields to read under canonical names; energies come from pt, eta and the mass.
Leptons are the electrons and muons of an event together (type 11 / 13), ordered by pT like every
collection here.  Decided here, as the format's settings say (``PhysliteSettings``):

* a jet's b-tag score is the DL1-type discriminant D = ln(pb / (fc pc + (1 - fc) pu)) of its
  b-tagging object (the ElementLink ``btaggingLink`` into the format's ``btagging`` container);
* a muon is identified (``is_tight``) where the three low bits of its xAOD ``quality`` -- the
  Quality enum (0 tight, 1 medium, 2 loose); higher bits are other flags -- are at most
  ``muon_quality_max``;
* the missing transverse momentum, which PHYSLITE leaves to be rebuilt, is the negative vector
  sum of the event's photons, jets and leptons (no soft term: a stand-in, docs/formats.md).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ..config import InputFormat
from ..event.columns import Collection, record_columns

ELECTRON, MUON = "electron", "muon"
QUALITY_BITS = 0x7  # xAOD::Muon quality: the Quality enum in the low three bits of the stored byte


def _canonical(collection: ak.Array, mapping: dict[str, str], fields: tuple[str, ...], fmt: InputFormat,
               fixed_mass: float | None = None) -> dict[str, ak.Array]:
    """The fields asked for, under canonical names, in GeV; energy from pt, eta and the mass (a branch, or
    the profile's fixed mass for a collection without one)."""
    scale, energy_fields = fmt.branches.energy_scale, fmt.branches.energy_fields
    out = {}
    for name in fields:
        if name == "energy" and "energy" not in mapping:
            pt, eta = (ak.values_astype(collection[mapping[k]], np.float64) for k in ("pt", "eta"))
            mass = collection[mapping["mass"]] if fixed_mass is None else fixed_mass
            out[name] = np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2) * scale
        elif name in energy_fields:
            out[name] = ak.values_astype(collection[mapping[name]], np.float64) * scale
        elif name in mapping:
            out[name] = collection[mapping[name]]
    return out


def _btag_scores(events: ak.Array, jets: ak.Array, fmt: InputFormat) -> ak.Array:
    """Each jet's DL1-type discriminant, from the b-tagging object its ElementLink points to."""
    settings = fmt.physlite
    btagging = events[settings.btagging]
    index = jets.btaggingLink.m_persIndex
    pb, pc, pu = (btagging[f"{settings.tagger}_{p}"][index] for p in ("pb", "pc", "pu"))
    fc = settings.charm_fraction
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(pb / (fc * pc + (1 - fc) * pu))


def _leptons(events: ak.Array, fmt: InputFormat, fields: tuple[str, ...]) -> ak.Array:
    """Electrons and muons of each event as one collection with ``type`` 11 / 13 and ``is_tight``."""
    bmap = fmt.branches
    parts = []
    for name, code in ((ELECTRON, bmap.electron_type), (MUON, bmap.muon_type)):
        mapping = bmap.collections[name]
        collection = events[mapping.prefix]
        wanted = tuple(f for f in fields if f not in ("type", "is_tight"))
        record = _canonical(collection, mapping.fields, wanted, fmt, fmt.physlite.fixed_mass.get(name))
        record["type"] = ak.values_astype(ak.zeros_like(collection[mapping.fields["pt"]]) + code, np.int32)
        if "is_tight" in fields:
            tight = (collection[mapping.fields["quality"]] & QUALITY_BITS) <= fmt.physlite.muon_quality_max \
                if name == MUON else collection[mapping.fields["is_tight"]]
            record["is_tight"] = ak.values_astype(tight, bool)
        parts.append(ak.zip(record))
    return ak.concatenate(parts, axis=1)


def _by_pt(record: ak.Array) -> ak.Array:
    """Each event's objects ordered by decreasing pT."""
    return record[ak.argsort(record.pt, axis=1, ascending=False)]


def physlite_collections(events: ak.Array, fmt: InputFormat, fields: dict[str, tuple[str, ...]]
                         ) -> dict[str, Collection]:
    """Photons, jets and leptons of PHYSLITE events as flat GeV columns with canonical fields."""
    bmap = fmt.branches
    records = {}
    for name in ("photon", "jet"):
        mapping = bmap.collections[name]
        collection = events[mapping.prefix]
        record = _canonical(collection, mapping.fields, fields[name], fmt, fmt.physlite.fixed_mass.get(name))
        if name == "jet" and "btag" in fields[name]:
            record["btag"] = _btag_scores(events, collection, fmt)
        records[name] = ak.zip(record)
    records["lepton"] = _leptons(events, fmt, fields["lepton"])
    return {f"{name}s": Collection(*record_columns(_by_pt(record), fields[name])) for name, record in records.items()}


def object_met(events: ak.Array, fmt: InputFormat, objects: dict[str, Collection]) -> np.ndarray:
    """|negative vector sum| of every photon, jet and lepton pT of the event, GeV (no soft term)."""
    n = objects["photons"].n_events
    px, py = np.zeros(n), np.zeros(n)
    for collection in objects.values():
        px -= np.bincount(collection.event_index, weights=collection.pt * np.cos(collection.phi), minlength=n)
        py -= np.bincount(collection.event_index, weights=collection.pt * np.sin(collection.phi), minlength=n)
    return np.hypot(px, py)


def nominal_weight(events: ak.Array, fmt: InputFormat) -> np.ndarray:
    """The nominal MC event weight, EventInfo's first ``mcEventWeights`` entry, float64."""
    weights = events.EventInfo[fmt.branches.event["mc_weight"]]
    return ak.to_numpy(ak.firsts(weights)).astype(np.float64)


def event_info_values(events: ak.Array, name: str) -> np.ndarray:
    """One EventInfo value per event (its event number, DSID)."""
    return ak.to_numpy(events.EventInfo[name])


def physlite_branches(fmt: InputFormat, is_data: bool = False, fields: dict | None = None) -> list[str]:
    """The PHYSLITE branches every file must have: each mapped object field and the b-tagging scores."""
    names = [f"Analysis{m.prefix}AuxDyn.{field}" for m in fmt.branches.collections.values() for field in m.fields.values()]
    names += [f"{fmt.physlite.btagging}AuxDyn.{fmt.physlite.tagger}_{p}" for p in ("pb", "pc", "pu")]
    return list(dict.fromkeys(names))
