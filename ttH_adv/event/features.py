"""The classifier's input features: the one place that names them and fixes their order.

``seed`` is the reference analysis's 23 inputs: pT, E, eta, phi of the two photons; Delta phi, Delta eta,
Delta R of the diphoton; pT, E, eta, phi of the three leading jets.  Absent jets are padded
with ``JET_PAD`` (a zero four-vector: pT = E = eta = phi = 0), which no real jet takes since
selected jets have pT > 25 GeV.  Further named sets:

* ``scaled``: as ``seed`` with photon pT and E divided by m_yy (the ATLAS H->yy choice that
  weakens the m_yy information in the photon momenta);
* ``extended``: ``seed`` plus jet b-tag scores, jet/b-jet/lepton multiplicities, H_T, MET and
  the leading lepton pT.

m_yy itself is never a feature.  The processors' feature dump and the ONNX scoring both call
``compute_features``, so training and inference cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .columns import Collection, Record, delta_phi

JET_PAD = 0.0
N_JETS = 3

_PHOTON_FEATURES = [f"photon{i}_{v}" for i in (1, 2) for v in ("pt", "E", "eta", "phi")]
_DIPHOTON_FEATURES = ["diphoton_dphi", "diphoton_deta", "diphoton_dr"]
_JET_FEATURES = [f"jet{i}_{v}" for i in range(1, N_JETS + 1) for v in ("pt", "E", "eta", "phi")]
_EXTRA_FEATURES = [f"jet{i}_btag" for i in range(1, N_JETS + 1)] + [
    "n_jets", "n_bjets", "n_leptons", "ht", "met", "lepton1_pt"]

FEATURE_SETS: dict[str, list[str]] = {
    "seed": _PHOTON_FEATURES + _DIPHOTON_FEATURES + _JET_FEATURES,
    "scaled": [f.replace("_pt", "_pt_over_mgg").replace("_E", "_E_over_mgg") if f.startswith("photon") else f
               for f in _PHOTON_FEATURES] + _DIPHOTON_FEATURES + _JET_FEATURES,
    "extended": _PHOTON_FEATURES + _DIPHOTON_FEATURES + _JET_FEATURES + _EXTRA_FEATURES,
}
FEATURE_SET_VERSION = {"seed": "seed-v1", "scaled": "scaled-v1", "extended": "extended-v1"}
DEFAULT_FEATURE_SET = "seed"


def all_feature_names() -> list[str]:
    """Every feature ``all_features`` computes (what the dump holds), in a stable order."""
    return list(dict.fromkeys(n for names in FEATURE_SETS.values() for n in names))


def feature_names(feature_set: str = DEFAULT_FEATURE_SET) -> list[str]:
    """Feature names of a named set, in model-input order."""
    try:
        return list(FEATURE_SETS[feature_set])
    except KeyError:
        raise ConfigError(f"unknown feature set {feature_set!r} (--feature-set, training data.feature_set); "
                          f"known: {sorted(FEATURE_SETS)}") from None


def all_features(lead: Record, sublead: Record, mass: np.ndarray, jets: Collection, n_bjets: np.ndarray,
                 leptons: Collection, met: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature any set uses, per event (events must all have a diphoton).

    ``jets`` and ``leptons`` are the selected, pT-ordered objects of the same events.
    """
    out: dict[str, np.ndarray] = {}
    for i, photon in ((1, lead), (2, sublead)):
        out[f"photon{i}_pt"] = photon.pt
        out[f"photon{i}_E"] = photon.energy
        out[f"photon{i}_eta"] = photon.eta
        out[f"photon{i}_phi"] = photon.phi
        out[f"photon{i}_pt_over_mgg"] = photon.pt / mass
        out[f"photon{i}_E_over_mgg"] = photon.energy / mass
    dphi = np.abs(delta_phi(lead.phi, sublead.phi))
    deta = np.abs(lead.eta - sublead.eta)
    out.update(diphoton_dphi=dphi, diphoton_deta=deta, diphoton_dr=np.hypot(dphi, deta))
    _, leading_jets = jets.leading(None, N_JETS, JET_PAD)
    for i, jet in enumerate(leading_jets):
        for name, column in (("pt", "pt"), ("E", "energy"), ("eta", "eta"), ("phi", "phi"), ("btag", "btag")):
            out[f"jet{i + 1}_{name}"] = jet[column]
    out["n_jets"] = jets.counts.astype(np.float64)
    out["n_bjets"] = np.asarray(n_bjets, dtype=np.float64)
    out["n_leptons"] = leptons.counts.astype(np.float64)
    out["ht"] = jets.sum("pt")
    out["met"] = np.asarray(met, dtype=np.float64)
    out["lepton1_pt"] = leptons.leading(None, 1)[1][0].pt
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def feature_matrix(features: dict[str, np.ndarray], feature_set: str = DEFAULT_FEATURE_SET) -> np.ndarray:
    """Stack the named set's features into a float32 [N, n_features] model input."""
    names = feature_names(feature_set)
    if not names or not features:
        return np.zeros((0, len(names)), np.float32)
    return np.stack([features[n] for n in names], axis=1).astype(np.float32)
