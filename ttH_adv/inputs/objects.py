"""Physics objects in GeV from any input format: the one layer that knows formats (``InputFormat``).

A format's reader, an entry of ``READERS`` named by ``InputFormat.reader`` (``flat``: the branch
map's records of ``ttH_adv.inputs.schema``; ``physlite``: coffea's PHYSLITESchema,
``ttH_adv.inputs.physlite``), gives the processor the same thing whatever the files: photons, jets
and leptons as flat ``Collection`` columns in GeV with the fields the format's decisions read
(``InputFormat.fields``), the missing transverse momentum, the trigger decision, the event number
and the MC event weight; and the manifest what a file says of itself (``ttH_adv.inputs.scans``).
Every energy-like field named in the branch map's ``energy_fields`` is multiplied by
``energy_scale`` (MeV -> GeV where the files hold MeV).  For interactive work the same objects
come as awkward ``PtEtaPhiELorentzVector`` records (``photons``, ``jets``, ``leptons``).  Only the
fields asked for are read.  A new kind of file is one ``register_reader`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import vector

from ..config import BranchMap, InputFormat
from ..errors import ConfigError
from ..event.columns import Collection, event_column
from . import physlite, scans

COLLECTIONS = ("photon", "jet", "lepton")
Fields = dict[str, tuple[str, ...]]


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


@dataclass(frozen=True)
class Reader:
    """How one kind of file becomes the analysis's objects: everything that differs between readers."""

    schema: Callable[[], type]                                         # the coffea schema class
    collections: Callable[[ak.Array, InputFormat, Fields], dict[str, Collection]]
    missing_et: Callable[[ak.Array, InputFormat, dict[str, Collection]], np.ndarray]  # GeV
    event_values: Callable[[ak.Array, str], np.ndarray]                 # an event-level branch by name
    nominal_weight: Callable[[ak.Array, InputFormat], np.ndarray]      # before the scale factors
    required_branches: Callable[[InputFormat, bool, Fields], list[str]]  # checked before any event is read
    scan: Callable[[scans.ScannedFile, object, InputFormat], None]     # the manifest's facts of one open tree
    read_filter: dict | None = None   # coffea's iteritems_options (the branches events are built from)
    # (format, fields, is_data, weight branches) -> the branches read in one go (coffea's preload); None: lazily
    preload: Callable[[InputFormat, Fields, bool, Iterable[str]], list[str]] | None = None


READERS: dict[str, Reader] = {}


def register_reader(name: str, reader: Reader) -> None:
    """Make ``reader`` the one a format profile names with ``reader: NAME``."""
    READERS[name] = reader


def reader_of(fmt: InputFormat) -> Reader:
    """The reader of a format profile; ``ConfigError`` naming the known ones."""
    return reader_named(fmt.reader)


def reader_named(name: str) -> Reader:
    """A reader by its name in a format profile; ``ConfigError`` naming the known ones."""
    if name not in READERS:
        raise ConfigError(f"unknown reader {name!r} in an input format profile; known: {sorted(READERS)}")
    return READERS[name]


def _flat_schema() -> type:
    from .schema import FlatNtupleSchema

    return FlatNtupleSchema


def _physlite_schema() -> type:
    from coffea.nanoevents import PHYSLITESchema

    return PHYSLITESchema


def _flat_collections(events: ak.Array, fmt: InputFormat, fields: Fields) -> dict[str, Collection]:
    return {f"{name}s": Collection.from_record(events[name], fields[name], fmt.branches) for name in COLLECTIONS}


def _flat_met(events: ak.Array, fmt: InputFormat, objects: dict[str, Collection]) -> np.ndarray:
    return event_column(events.met, "et").astype(np.float64) * fmt.branches.energy_scale


def _flat_weight(events: ak.Array, fmt: InputFormat) -> np.ndarray:
    return event_column(events, fmt.branches.event["mc_weight"]).astype(np.float64)


def _flat_required(fmt: InputFormat, is_data: bool, fields: Fields) -> list[str]:
    return list(dict.fromkeys(flat_branches(fmt, fields, is_data)))


def flat_branches(fmt: InputFormat, fields: Fields, is_data: bool, weights: Iterable[str] = ()) -> list[str]:
    """The branches of a flat file the objects, the event values and (MC) the weights are read from."""
    bmap = fmt.branches
    names = [bmap.collections[c].branch(f) for c, fs in fields.items() for f in fs]
    names += [bmap.singletons["met"]["et"], *(bmap.event[k] for k in ("trigger", "event_number") if k in bmap.event)]
    if not is_data:
        names += [bmap.event["mc_weight"], *fmt.scale_factors, *weights]
    return names


FLAT, PHYSLITE = "flat", "physlite"
register_reader(FLAT, Reader(_flat_schema, _flat_collections, _flat_met, event_column, _flat_weight, _flat_required,
                             scans.scan_flat, preload=flat_branches))
register_reader(PHYSLITE, Reader(
    _physlite_schema, physlite.physlite_collections, physlite.object_met, physlite.event_info_values,
    physlite.nominal_weight, physlite.physlite_branches, scans.scan_physlite,
    # PHYSLITE files hold ~1500 branches, of which the aux stores of the objects and EventInfo are all that is read
    read_filter={"filter_name": ["*AuxDyn*", "EventInfoAux*"]}))


def open_events(path: str, fmt: InputFormat, metadata: dict | None = None, tree: str | None = None,
                entry_start: int | None = None, entry_stop: int | None = None) -> ak.Array:
    """One file's events (or an entry range of them) as the processor sees them, lazily, with ``metadata``
    (a dataset's): for interactive work and for batch slices, which read chunk by chunk without a Runner."""
    from coffea.nanoevents import NanoEventsFactory

    from .schema import branch_map_dict

    reader = reader_of(fmt)
    tree = tree or fmt.branches.tree
    entries = {"entrystart": entry_start, "entrystop": entry_stop} if entry_start is not None else {}
    metadata = {"filename": path, "treename": tree, **entries, "branch_map": branch_map_dict(fmt.branches),
                **(metadata or {})}
    factory = NanoEventsFactory.from_root({path: tree}, schemaclass=reader.schema(), metadata=metadata,
                                          mode="virtual", iteritems_options=reader.read_filter or {},
                                          entry_start=entry_start, entry_stop=entry_stop)
    return factory.events()


def collections(events: ak.Array, fmt: InputFormat,
                extra: dict[str, tuple[str, ...]] | None = None) -> dict[str, Collection]:
    """Photons, jets and leptons as flat GeV columns (the processor's fast path): the format's fields plus ``extra``."""
    extra = extra or {}
    fields = {name: (*fmt.fields(name), *extra.get(name, ())) for name in COLLECTIONS}
    return reader_of(fmt).collections(events, fmt, fields)


def missing_et(events: ak.Array, fmt: InputFormat, objects: dict[str, Collection]) -> np.ndarray:
    """The missing transverse momentum per event in GeV (PHYSLITE: from the objects, ``ttH_adv.inputs.physlite``)."""
    return reader_of(fmt).missing_et(events, fmt, objects)


def event_values(events: ak.Array, fmt: InputFormat, key: str) -> np.ndarray:
    """One event-level value per event, named in the branch map's ``event`` section (PHYSLITE: EventInfo's)."""
    return reader_of(fmt).event_values(events, fmt.branches.event[key])


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
    weight = reader_of(fmt).nominal_weight(events, fmt)
    for name in fmt.scale_factors:
        weight = weight * event_column(events, name).astype(np.float64)
    return weight


def branches_read(fmt: InputFormat, fields: Fields, is_data: bool, weights: Iterable[str] = ()) -> list[str]:
    """Every branch a file of this format has read up front (coffea's preload; a lazy reader: none)."""
    preload = reader_of(fmt).preload
    return preload(fmt, fields, is_data, weights) if preload else []


def required_branches(fmt: InputFormat, is_data: bool, fields: Fields | None = None) -> list[str]:
    """The branches every file of this format must have (before any event is read), in a stable order."""
    fields = fields or {name: fmt.fields(name) for name in COLLECTIONS}
    return reader_of(fmt).required_branches(fmt, is_data, fields)
