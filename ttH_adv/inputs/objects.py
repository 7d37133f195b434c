"""Physics objects in GeV from any input format: the one layer that knows formats (``InputFormat``).

A format's reader (``flat``: the branch map's records of ``ttH_adv.inputs.schema``; ``physlite``: coffea's
PHYSLITESchema, ``ttH_adv.inputs.physlite``) gives the processor the same thing whatever the files:
photons, jets and leptons as flat ``Collection`` columns in GeV with the fields the format's
decisions read (``InputFormat.fields``), the missing transverse momentum, the trigger decision,
the event number and the MC event weight.  Every energy-like field named in the branch map's
``energy_fields`` is multiplied by ``energy_scale`` (MeV -> GeV where the files hold MeV).  For
interactive work the same objects come as awkward ``PtEtaPhiELorentzVector`` records
(``photons``, ``jets``, ``leptons``).  Only the fields asked for are read.
"""

from __future__ import annotations

from collections.abc import Iterable

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import vector

from ..config import BranchMap, InputFormat
from ..event.columns import Collection, event_column

FLAT, PHYSLITE = "flat", "physlite"
READERS = (FLAT, PHYSLITE)
COLLECTIONS = ("photon", "jet", "lepton")


def to_gev(record: ak.Array, branch_map: BranchMap, fields: Iterable[str],
           with_name: str | None = "PtEtaPhiELorentzVector") -> ak.Array:
    """Zip ``fields`` of a raw record into a GeV record (Lorentz vector if it has pt/eta/phi/energy)."""
    scale = branch_map.energy_scale
    columns = {f: (record[f] * scale if f in branch_map.energy_fields else record[f]) for f in fields}
    return ak.zip(columns, with_name=with_name, behavior=vector.behavior)


def photons(events: ak.Array, fmt: InputFormat) -> ak.Array:
    """Photons in GeV (a flat format's records): kinematics plus the identification and isolation fields."""
    return to_gev(events.photon, fmt.branches, fmt.fields("photon"))


def jets(events: ak.Array, fmt: InputFormat) -> ak.Array:
    """Jets in GeV (a flat format's records) with the b-tag and JVT fields."""
    return to_gev(events.jet, fmt.branches, fmt.fields("jet"))


def leptons(events: ak.Array, fmt: InputFormat) -> ak.Array:
    """Electrons and muons together, in GeV (a flat format's records)."""
    return to_gev(events.lepton, fmt.branches, fmt.fields("lepton"))


def met(events: ak.Array, fmt: InputFormat) -> ak.Array:
    """Missing transverse momentum (et, phi) in GeV (a flat format's record)."""
    return to_gev(events.met, fmt.branches, ("et", "phi"), with_name=None)


def schema(reader: str) -> type:
    """The coffea schema of a reader (``InputFormat.reader``): the flat ntuple schema, or coffea's PHYSLITESchema."""
    if reader == PHYSLITE:
        from coffea.nanoevents import PHYSLITESchema

        return PHYSLITESchema
    from .schema import FlatNtupleSchema

    return FlatNtupleSchema


def read_filter(reader: str) -> dict:
    """The branches coffea builds events from (its ``iteritems_options``): PHYSLITE files hold ~1500, of which
    the aux stores of the objects and EventInfo are all that is read (trigger matching cannot even be represented)."""
    return {"filter_name": ["*AuxDyn*", "EventInfoAux*"]} if reader == PHYSLITE else {}


def open_events(path: str, fmt: InputFormat, metadata: dict | None = None, tree: str | None = None,
                entry_start: int | None = None, entry_stop: int | None = None) -> ak.Array:
    """One file's events (or an entry range of them) as the processor sees them, lazily, with ``metadata``
    (a dataset's): for interactive work and for batch slices, which read chunk by chunk without a Runner."""
    from coffea.nanoevents import NanoEventsFactory

    from .schema import branch_map_dict

    tree = tree or fmt.branches.tree
    entries = {"entrystart": entry_start, "entrystop": entry_stop} if entry_start is not None else {}
    metadata = {"filename": path, "treename": tree, **entries, "branch_map": branch_map_dict(fmt.branches),
                **(metadata or {})}
    factory = NanoEventsFactory.from_root({path: tree}, schemaclass=schema(fmt.reader), metadata=metadata,
                                          mode="virtual", iteritems_options=read_filter(fmt.reader),
                                          entry_start=entry_start, entry_stop=entry_stop)
    return factory.events()


def collections(events: ak.Array, fmt: InputFormat,
                extra: dict[str, tuple[str, ...]] | None = None) -> dict[str, Collection]:
    """Photons, jets and leptons as flat GeV columns (the processor's fast path): the format's fields plus ``extra``."""
    extra = extra or {}
    fields = {name: (*fmt.fields(name), *extra.get(name, ())) for name in COLLECTIONS}
    if fmt.reader == PHYSLITE:
        from .physlite import physlite_collections

        return physlite_collections(events, fmt, fields)
    return {f"{name}s": Collection.from_record(events[name], fields[name], fmt.branches) for name in COLLECTIONS}


def missing_et(events: ak.Array, fmt: InputFormat, objects: dict[str, Collection]) -> np.ndarray:
    """The missing transverse momentum per event in GeV (PHYSLITE: from the objects, ``ttH_adv.inputs.physlite``)."""
    if fmt.reader == PHYSLITE:
        from .physlite import object_met

        return object_met(objects)
    return event_column(events.met, "et").astype(np.float64) * fmt.branches.energy_scale


def event_values(events: ak.Array, fmt: InputFormat, key: str) -> np.ndarray:
    """One event-level value per event, named in the branch map's ``event`` section (PHYSLITE: EventInfo's)."""
    name = fmt.branches.event[key]
    if fmt.reader == PHYSLITE:
        return ak.to_numpy(events.EventInfo[name])
    return event_column(events, name)


def trigger(events: ak.Array, fmt: InputFormat) -> np.ndarray:
    """The trigger decision per event; every event passes where the format has none (PHYSLITE)."""
    if "trigger" not in fmt.branches.event:
        return np.ones(len(events), bool)
    return event_values(events, fmt, "trigger").astype(bool)


def event_number(events: ak.Array, fmt: InputFormat) -> np.ndarray:
    """The event number per event (it picks a k-fold model's network and keys the feature dump)."""
    return event_values(events, fmt, "event_number").astype(np.int64)


def mc_weight(events: ak.Array, fmt: InputFormat) -> np.ndarray:
    """The MC event weight times the format's scale factors, per event, float64 (before normalisation)."""
    if fmt.reader == PHYSLITE:
        from .physlite import nominal_weight

        weight = nominal_weight(events, fmt)
    else:
        weight = event_values(events, fmt, "mc_weight").astype(np.float64)
    for name in fmt.scale_factors:
        weight = weight * event_column(events, name).astype(np.float64)
    return weight


def branches_read(fmt: InputFormat, fields: dict[str, tuple[str, ...]], is_data: bool,
                  weights: Iterable[str] = ()) -> list[str]:
    """Every branch a flat file of this format has read (coffea's preload; PHYSLITE reads lazily: none)."""
    if fmt.reader == PHYSLITE:
        return []
    bmap = fmt.branches
    names = [bmap.collections[c].branch(f) for c, fs in fields.items() for f in fs]
    names += [bmap.singletons["met"]["et"], *(bmap.event[k] for k in ("trigger", "event_number") if k in bmap.event)]
    if not is_data:
        names += [bmap.event["mc_weight"], *fmt.scale_factors, *weights]
    return names


def required_branches(fmt: InputFormat, is_data: bool, fields: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """The branches every file of this format must have (before any event is read), in a stable order."""
    fields = fields or {name: fmt.fields(name) for name in COLLECTIONS}
    if fmt.reader == PHYSLITE:
        from .physlite import physlite_branches

        return physlite_branches(fmt)
    return list(dict.fromkeys(branches_read(fmt, fields, is_data)))
