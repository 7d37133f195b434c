"""Object and event selections as pure columnar functions (numpy over flat columns).

Each function takes GeV objects (``ttH_adv.event.columns.Collection`` for collections,
``Record`` for one object per event) and the relevant configuration section -- for the
identification, isolation, b-tagging and JVT decisions the input format's (``InputFormat``) --
and returns a boolean mask, so a processor step is a short composition of named selections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ChannelCuts, InputFormat, JetCuts, JvtDecision, LeptonCuts, PhotonCuts
from .columns import Collection, Record, invariant_mass

REGIONS = ("TI", "NTNI")   # photon regions: both tight and isolated, or one not (the template control)
NO_CHANNEL = "none"
COMMON_STEPS = ("all", "trigger", "two_photons", "relative_pt", "mass_window", "unblinded")


def cutflow_steps(channels: tuple[str, ...]) -> tuple[str, ...]:
    """Cutflow step names: the common steps, then each region and its channels."""
    return COMMON_STEPS + tuple(s for r in REGIONS for s in (r, *(f"{r}_{c}" for c in channels)))


def photon_in_acceptance(photons: Collection, cuts: PhotonCuts) -> np.ndarray:
    """pT threshold, |eta| acceptance and the barrel/end-cap crack veto."""
    abs_eta = np.abs(photons.eta)
    in_crack = (abs_eta > cuts.crack[0]) & (abs_eta < cuts.crack[1])
    return (photons.pt > cuts.pt_min) & (abs_eta < cuts.abs_eta_max) & ~in_crack


def photon_is_tight_isolated(photons: Collection | Record, fmt: InputFormat) -> np.ndarray:
    """Identification and isolation as the input format decides them: the TI photon definition."""
    return fmt.photon_id(photons) & fmt.photon_isolation(photons)


@dataclass
class Diphoton:
    """The two leading accepted photons of each event (zeros where fewer than two)."""

    lead: Record
    sublead: Record
    mass: np.ndarray      # GeV, 0 where no pair
    has_pair: np.ndarray  # bool

    def take(self, index: np.ndarray) -> Diphoton:
        """The diphotons of the events at ``index``."""
        return Diphoton(self.lead.take(index), self.sublead.take(index), self.mass[index], self.has_pair[index])


def leading_diphoton(photons: Collection, cuts: PhotonCuts) -> Diphoton:
    """Pair the two highest-pT photons in acceptance (photons are pT-ordered in the files)."""
    n_accepted, (lead, sublead) = photons.leading(photon_in_acceptance(photons, cuts), 2)
    has_pair = n_accepted >= 2
    mass = np.where(has_pair, invariant_mass(lead, sublead), 0.0)
    return Diphoton(lead, sublead, mass, has_pair)


def diphoton_passes_relative_pt(d: Diphoton, cuts: PhotonCuts) -> np.ndarray:
    """Leading/subleading pT / m_yy above the configured fractions."""
    return (d.has_pair & (d.lead.pt > cuts.lead_pt_over_mass * d.mass)
            & (d.sublead.pt > cuts.sublead_pt_over_mass * d.mass))


def in_mass_window(mass: np.ndarray, low: float, high: float) -> np.ndarray:
    """low < m_yy < high."""
    return (mass > low) & (mass < high)


def select_jets(jets: Collection, cuts: JetCuts, jvt: JvtDecision) -> np.ndarray:
    """Jets passing pT, |eta| and the format's JVT pile-up decision."""
    return (jets.pt > cuts.pt_min) & (np.abs(jets.eta) < cuts.abs_eta_max) & jvt(jets)


def select_leptons(leptons: Collection, cuts: LeptonCuts, fmt: InputFormat) -> np.ndarray:
    """Isolated (identified) electrons and muons within their acceptances, as the input format decides them."""
    is_e = leptons.type == fmt.branches.electron_type
    is_mu = leptons.type == fmt.branches.muon_type
    abs_eta = np.abs(leptons.eta)
    kin = (is_e & (leptons.pt > cuts.electron_pt_min) & (abs_eta < cuts.electron_abs_eta_max)) | (
        is_mu & (leptons.pt > cuts.muon_pt_min) & (abs_eta < cuts.muon_abs_eta_max))
    iso = fmt.lepton_isolation(leptons)
    tight = fmt.lepton_id(leptons) if cuts.require_tight else True
    return kin & iso & tight


def away_from(objects: Collection, *others: Record, min_dr: float = 0.4) -> np.ndarray:
    """Objects farther than ``min_dr`` from each per-event object in ``others`` (overlap removal)."""
    keep = np.ones(len(objects.pt), bool)
    for other in others:
        d_eta = objects.eta - objects.per_event(other.eta)
        d_phi = np.abs(objects.phi - objects.per_event(other.phi))
        d_phi = np.where(d_phi > np.pi, 2 * np.pi - d_phi, d_phi)  # |d_phi| <= 2 pi for phi in [-pi, pi]
        keep &= d_eta**2 + d_phi**2 > min_dr**2  # Delta R^2: no square root, no modulo on every object pair
    return keep


def passes_channel(n_leptons: np.ndarray, n_jets: np.ndarray, n_bjets: np.ndarray, cuts: ChannelCuts) -> np.ndarray:
    """Lepton, jet and b-jet multiplicity requirements of one channel."""
    ok = (n_leptons >= cuts.min_leptons) & (n_jets >= cuts.min_jets) & (n_bjets >= cuts.min_bjets)
    if cuts.max_leptons is not None:
        ok &= n_leptons <= cuts.max_leptons
    return ok
