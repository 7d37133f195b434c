"""Object and event selections as pure columnar functions (no loops over events).

Each function takes GeV objects from ``ttH_adv.objects`` and the relevant configuration
section, and returns a boolean mask or selected objects, so a processor step is a short
composition of named selections.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from .config import ChannelCuts, JetCuts, LeptonCuts, PhotonCuts


def photon_in_acceptance(photons: ak.Array, cuts: PhotonCuts) -> ak.Array:
    """pT threshold, |eta| acceptance and the barrel/end-cap crack veto."""
    abs_eta = abs(photons.eta)
    in_crack = (abs_eta > cuts.crack[0]) & (abs_eta < cuts.crack[1])
    return (photons.pt > cuts.pt_min) & (abs_eta < cuts.abs_eta_max) & ~in_crack


def photon_is_isolated(photons: ak.Array, cuts: PhotonCuts) -> ak.Array:
    """Track (ptcone30/pT) and calorimeter (etcone20/pT) isolation."""
    return (photons.ptcone30 < cuts.ptcone30_rel_max * photons.pt) & (
        photons.etcone20 < cuts.etcone20_rel_max * photons.pt)


def photon_is_tight_isolated(photons: ak.Array, cuts: PhotonCuts) -> ak.Array:
    """Tight identification and isolation: the TI photon definition."""
    return photons.is_tight & photon_is_isolated(photons, cuts)


@dataclass
class Diphoton:
    """The two leading accepted photons of each event (None where fewer than two)."""

    lead: ak.Array
    sublead: ak.Array
    mass: np.ndarray       # GeV, 0 where no pair
    has_pair: np.ndarray   # bool


def leading_diphoton(photons: ak.Array, cuts: PhotonCuts) -> Diphoton:
    """Pair the two highest-pT photons in acceptance (photons are pT-ordered in the files)."""
    accepted = photons[photon_in_acceptance(photons, cuts)]
    has_pair = ak.to_numpy(ak.num(accepted, axis=1) >= 2)
    padded = ak.pad_none(accepted, 2, axis=1, clip=True)
    lead, sublead = padded[:, 0], padded[:, 1]
    mass = ak.to_numpy(ak.fill_none((lead + sublead).mass, 0.0))
    return Diphoton(lead, sublead, mass, has_pair)


def diphoton_passes_relative_pt(d: Diphoton, cuts: PhotonCuts) -> np.ndarray:
    """Leading/subleading pT / m_yy above the configured fractions."""
    safe_mass = np.where(d.mass > 0, d.mass, 1.0)
    lead_ok = ak.fill_none(d.lead.pt / safe_mass > cuts.lead_pt_over_mass, False)
    sub_ok = ak.fill_none(d.sublead.pt / safe_mass > cuts.sublead_pt_over_mass, False)
    return ak.to_numpy(lead_ok & sub_ok) & d.has_pair


def in_mass_window(mass: np.ndarray, low: float, high: float) -> np.ndarray:
    """low < m_yy < high."""
    return (mass > low) & (mass < high)


def select_jets(jets: ak.Array, cuts: JetCuts) -> ak.Array:
    """Jets passing pT, |eta| and the JVT pile-up cut (applied only where JVT is defined)."""
    abs_eta = abs(jets.eta)
    jvt_applies = (jets.pt < cuts.jvt_pt_max) & (abs_eta < cuts.jvt_abs_eta_max)
    keep = (jets.pt > cuts.pt_min) & (abs_eta < cuts.abs_eta_max) & (~jvt_applies | (jets.jvt > cuts.jvt_min))
    return jets[keep]


def is_btagged(jets: ak.Array, cuts: JetCuts) -> ak.Array:
    """b-tag decision at the configured working point."""
    return jets.btag > cuts.btag_min


def select_leptons(leptons: ak.Array, cuts: LeptonCuts, electron_type: int, muon_type: int) -> ak.Array:
    """Isolated (tight) electrons and muons within their acceptances."""
    is_e = leptons["type"] == electron_type
    is_mu = leptons["type"] == muon_type
    abs_eta = abs(leptons.eta)
    kin = (is_e & (leptons.pt > cuts.electron_pt_min) & (abs_eta < cuts.electron_abs_eta_max)) | (
        is_mu & (leptons.pt > cuts.muon_pt_min) & (abs_eta < cuts.muon_abs_eta_max))
    iso = (leptons.ptcone30 < cuts.ptcone30_rel_max * leptons.pt) & (
        leptons.etcone20 < cuts.etcone20_rel_max * leptons.pt)
    keep = kin & iso & (leptons.is_tight if cuts.require_tight else True)
    return leptons[keep]


def passes_channel(n_leptons: np.ndarray, n_jets: np.ndarray, n_bjets: np.ndarray, cuts: ChannelCuts) -> np.ndarray:
    """Lepton, jet and b-jet multiplicity requirements of one channel."""
    ok = (n_leptons >= cuts.min_leptons) & (n_jets >= cuts.min_jets) & (n_bjets >= cuts.min_bjets)
    if cuts.max_leptons is not None:
        ok &= n_leptons <= cuts.max_leptons
    return ok


def away_from(objects: ak.Array, *others: ak.Array, min_dr: float = 0.4) -> ak.Array:
    """Objects farther than ``min_dr`` from each of the per-event ``others`` (overlap removal)."""
    keep = ak.ones_like(objects.pt, dtype=bool)
    for other in others:
        keep = keep & (objects.delta_r(other) > min_dr)
    return objects[keep]
