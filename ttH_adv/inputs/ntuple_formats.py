"""The synthetic ntuples in each flat input format the generator writes (``tth-adv generate --format``).

The generator's events come in the 2020 release's layout (``opendata2020``: tree ``mini``, MeV).  A
writer translates a block of them into another format's layout, so the readers, profiles and the
whole chain run on that format at scale.  ``opendata2025`` writes what the 2025 release for
education holds (``../shared/realdata/README.md``): tree ``analysis``, GeV, its branch names and
types, the release's DSIDs and file names, ``xsec x kfac x filteff / sum_of_weights`` weights.
Where the 2025 files carry a quantity the generator does not model, the translation says what it
writes instead:

* ``photon_ptcone20`` and ``photon_topoetcone40`` are the generator's ``ptcone30`` and ``etcone20``
  (it models one track and one calorimeter cone per photon); ``lep_ptvarcone30`` and
  ``lep_topoetcone20`` likewise;
* the ``isTightIso`` flags are the 2020 profile's cone decisions, ``jet_jvt`` its JVT decision;
* ``jet_btag_quantile`` is the MV2c10 score binned at its 85/77/70/60% thresholds (the generator
  models the score's efficiencies at the 77% point only, so the tighter bins are not calibrated);
* ``ScaleFactor_FTAG`` (and ``_BTAG``) are the 2020 b-tag scale factor, ``ScaleFactor_JVT`` 1; the
  2020 photon-trigger factor has no 2025 name and is left out;
* data follow the release's conventions: mcWeight and scale factors 1, xsec = kfac = filteff = 0
  (float), sum_of_weights = num_events = 1, channelNumber = runNumber.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import awkward as ak
import numpy as np

from ..config import InputFormat, packaged_formats
from ..errors import ConfigError
from .samples import SampleSpec, load_catalogue

# MV2c10 thresholds of the 85, 77, 70 and 60% b-jet efficiency working points (ATLAS, ATL-PHYS-PUB-2016-012).
MV2C10_WORKING_POINTS = (0.1758, 0.6459, 0.8244, 0.9349)
RELEASE_2025 = "ODEO_FEB2025_v0"
SKIM_2025 = "GamGam"
DATA_PERIODS_2025 = "ABCDEFGIKL"  # data16 periods, one per data file


@dataclass(frozen=True)
class SampleFacts:
    """What a writer needs to know of the sample a block belongs to."""

    spec: SampleSpec
    n_events: int        # events of the whole sample (the 2025 files' num_events)
    sum_weights: float   # its sum of mcWeight, in double precision


@dataclass(frozen=True)
class NtupleWriter:
    """One input format as the generator writes it."""

    format: str                                              # the input format profile it matches
    translate: Callable[[dict[str, object], SampleFacts], dict[str, object]]
    file_name: Callable[[SampleSpec, int, int], str]         # (sample, file index, files) -> path in the output
    dsid: Callable[[SampleSpec], int]                        # the DSID the files and manifest carry

    def profile(self) -> InputFormat:
        """The packaged profile of the format (its tree, for the files and the manifest)."""
        return packaged_profile(self.format)


@functools.cache
def packaged_profile(name: str) -> InputFormat:
    """A packaged input format profile, loaded once (a writer translates block after block with it).

    The generator writes the packaged layouts whatever a user's configuration says of its own formats."""
    return packaged_formats()[name]


# ------------------------------------------------------------------ 2020 (the generator's own layout)

def _same(block: dict[str, object], facts: SampleFacts) -> dict[str, object]:
    return block


def _name_2020(spec: SampleSpec, index: int, n_files: int) -> str:
    return f"{spec.name}/{spec.name}_{index:03d}.root"


# ------------------------------------------------------------------ 2025 release for education

def dsid_2025(spec: SampleSpec) -> int:
    """The 2025 release's DSID of a sample (its GamGam catalogue by name), else the 2020 one."""
    by_name = {entry.name: dsid for dsid, entry in load_catalogue("opendata2025_gamgam.yaml").items()}
    return by_name.get(spec.name, spec.dsid)


def _process_2025(spec: SampleSpec) -> str:
    dsid = dsid_2025(spec)
    entry = load_catalogue("opendata2025_gamgam.yaml").get(dsid) or load_catalogue().get(dsid)
    return entry.process if entry else spec.name


def _name_2025(spec: SampleSpec, index: int, n_files: int) -> str:
    part = f".{index + 1}" if n_files > 1 else ""
    if spec.is_data:
        period = DATA_PERIODS_2025[index % len(DATA_PERIODS_2025)] + ("" if index < len(DATA_PERIODS_2025) else
                                                                      str(index // len(DATA_PERIODS_2025)))
        return f"{spec.name}/{RELEASE_2025}_{SKIM_2025}_data16_period{period}.{SKIM_2025}.root"
    return (f"{spec.name}/{RELEASE_2025}_{SKIM_2025}_mc_{dsid_2025(spec)}.{_process_2025(spec)}."
            f"{SKIM_2025}{part}.root")


def _in_gev(record: ak.Array, fields: dict[str, str], energy: set[str]) -> dict[str, ak.Array]:
    """Fields of a 2020 (MeV) record under new names, energies in GeV (float32, as the files store them)."""
    return {new: ak.values_astype(record[old] / 1000.0, np.float32) if old in energy else record[old]
            for new, old in fields.items()}


def _btag_quantile(score: ak.Array) -> ak.Array:
    """1 (fails 85%) ... 5 (passes 60%): the pseudo-continuous b-tag bin of an MV2c10 score."""
    quantile = ak.values_astype(ak.ones_like(score), np.int32)
    for threshold in MV2C10_WORKING_POINTS:
        quantile = quantile + ak.values_astype(score >= threshold, np.int32)
    return quantile


def _translate_2025(block: dict[str, object], facts: SampleFacts) -> dict[str, object]:
    """A 2020-layout block (MeV) as the 2025 release writes it (GeV, its names and types)."""
    old = packaged_profile("opendata2020")
    energy = {"pt", "E", "ptcone30", "etcone20"}
    kinematics = {"pt": "pt", "eta": "eta", "phi": "phi", "e": "E"}
    photon, jet, lep = block["photon"], block["jet"], block["lep"]
    photon_gev = ak.zip({"pt": photon.pt / 1000.0, "ptcone30": photon.ptcone30 / 1000.0,
                         "etcone20": photon.etcone20 / 1000.0})
    lep_gev = ak.zip({"pt": lep.pt / 1000.0, "ptcone30": lep.ptcone30 / 1000.0, "etcone20": lep.etcone20 / 1000.0})
    jet_gev = ak.zip({"pt": jet.pt / 1000.0, "eta": jet.eta, "jvt": jet.jvt})
    photons = {**_in_gev(photon, {**kinematics, "ptcone20": "ptcone30", "topoetcone40": "etcone20"}, energy),
               "isTightID": photon.isTightID, "isTightIso": old.photon_isolation(photon_gev)}
    jets = {**_in_gev(jet, kinematics, energy), "btag_quantile": _btag_quantile(jet.MV2c10),
            "jvt": old.jvt(jet_gev)}
    leptons = {**_in_gev(lep, {**kinematics, "ptvarcone30": "ptcone30", "topoetcone20": "etcone20"}, energy),
               "type": ak.values_astype(lep["type"], np.int32), "charge": lep.charge, "isTightID": lep.isTightID,
               "isTightIso": old.lepton_isolation(lep_gev)}
    n = len(block["eventNumber"])
    is_mc = not facts.spec.is_data
    ones = np.ones(n, np.float32)
    scale_factors = {"PILEUP": block["scaleFactor_PILEUP"], "PHOTON": block["scaleFactor_PHOTON"],
                     "ELE": block["scaleFactor_ELE"], "MUON": block["scaleFactor_MUON"],
                     "FTAG": block["scaleFactor_BTAG"], "BTAG": block["scaleFactor_BTAG"], "JVT": ones,
                     "LepTRIGGER": block["scaleFactor_LepTRIGGER"], "TAU": ones}
    run = np.asarray(block["runNumber"]).astype(np.uint32)

    def number(value: float, dtype: type) -> np.ndarray:
        return np.full(n, value, dtype)

    return {
        "num_events": number(facts.n_events if is_mc else 1.0, np.float64),
        "sum_of_weights": number(facts.sum_weights if is_mc else 1.0, np.float64),
        "xsec": number(facts.spec.xsec_pb, np.float64) if is_mc else number(0.0, np.float32),
        "kfac": number(1.0, np.float64) if is_mc else number(0.0, np.float32),
        "filteff": number(1.0, np.float64) if is_mc else number(0.0, np.float32),
        "mcWeight": np.asarray(block["mcWeight"], np.float32),
        **{f"ScaleFactor_{name}": np.asarray(sf, np.float32) for name, sf in scale_factors.items()},
        "channelNumber": number(dsid_2025(facts.spec), np.uint32) if is_mc else run,
        "eventNumber": np.asarray(block["eventNumber"]).astype(np.uint64),
        "runNumber": run,
        "trigP": block["trigP"], "trigE": block["trigE"], "trigM": block["trigM"],
        "jet": ak.zip(jets), "lep": ak.zip(leptons), "photon": ak.zip(photons),
        "met": (np.asarray(block["met_et"]) / 1000.0).astype(np.float32),
        "met_phi": np.asarray(block["met_phi"], np.float32),
    }


WRITERS: dict[str, NtupleWriter] = {
    "opendata2020": NtupleWriter("opendata2020", _same, _name_2020, lambda spec: spec.dsid),
    "opendata2025": NtupleWriter("opendata2025", _translate_2025, _name_2025, dsid_2025),
}


def writer(name: str) -> NtupleWriter:
    """The generator's writer of an input format; a ``ConfigError`` naming the ones it has."""
    if name not in WRITERS:
        raise ConfigError(f"the generator writes the input formats {sorted(WRITERS)}, not {name!r} (--format)")
    return WRITERS[name]
