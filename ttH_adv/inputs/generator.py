"""Synthetic Run-2 ntuples in the ATLAS Open Data 13 TeV format (tree ``mini``, MeV).

Real ntuples cannot be downloaded here, so this module writes files a real analysis reads:
the Open Data branch names and types, several files per sample, and a datasets manifest.
The physics model (all numbers are named constants below; README.md "Synthetic ntuples"):

* Higgs samples: m_H = 125 GeV, isotropic H->yy decay boosted by a per-mode Higgs pT and
  rapidity; the photon energy resolution (sampling 10%/15% barrel/end-cap, constant 1.2%/1.5%,
  converted photons x1.8) gives sigma(m_yy) ~ 1.7 GeV with non-Gaussian tails.
* Continuum yy (data, yy+jets, tt+yy): m_yy drawn from a falling exponential, decayed with a
  mixture of isotropic (gg box) and forward-peaked (qq -> yy, (1+c^2)/(1-c^2)) angular shapes.
  **Why the photon kinematics correlate with m_yy:** the diphoton recoils against the hadronic
  system; at fixed partonic energy a heavier diphoton leaves less energy for that recoil, so its
  transverse boost falls as (125 GeV / m_yy)^k.  A heavier continuum pair is therefore less
  boosted: wider opening angle (Delta R, Delta phi rise with m_yy) and photon pT set by m_yy/2
  rather than by the boost.  Together with the pT/m_yy selection this gives the Pearson
  correlations the reference analysis reports for NTNI data (table in README.md).
* Data = prompt yy (70%), y+jet (25%) and jet+jet (5%) with one or two fake photons
  (jets faking photons: low tight-ID efficiency, large isolation energy), plus 6% of events
  with top-pair-like hadronic content (tt+yy and tt+fakes).  Data contain no Higgs signal.
* The reducible MC (``yjets``) is the data's y+jet and jet+jet part alone, generated as the data's
  fakes are (the simulation of the fakes is perfect here, unlike a real one's).
* Jets from top decays, W/Z decays, VBF tagging jets, ISR and pile-up, with flavour-dependent
  MV2c10 scores (77% WP efficiency: b 0.77, c 0.16, light 0.0075) and JVT; leptons from
  W/Z decays; MET from neutrinos plus a soft-term resolution.
* Weights: mcWeight (with a negative-weight fraction for NLO samples), per-event scale
  factors, XSection (pb) and SumWeights (sum of mcWeight over all generated events of the
  sample), so sum(mcWeight) * XSection * L / SumWeights = XSection * L exactly.
* Systematic branches (absolute 1-sigma shifts in MeV, applied as pT +/- syst):
  ``photon_pt_syst`` photon energy scale (0.4% + 0.3% x |eta|), ``jet_pt_syst`` jet energy
  scale (1% + 3% exp(-pT/50 GeV) + 0.5% x |eta|), ``lep_pt_syst`` lepton momentum scale
  (0.5% e, 0.3% mu), ``met_et_syst`` MET soft term (5% + 2 GeV).

Everything is deterministic for a seed: events come in fixed-size blocks, each seeded from
(seed, sample, block), so the content does not depend on how many files are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from ..errors import ConfigError
from ..progress import progress_bar
from .manifest import save_manifest
from .ntuple_formats import MV2C10_WORKING_POINTS, NtupleWriter, SampleFacts, writer
from .samples import DATA_FAKE_SHARES, SAMPLES, SAMPLES_BY_NAME, SampleSpec, data_luminosity_pb

log = logging.getLogger(__name__)

BLOCK_SIZE = 50_000
TREE_NAME = "mini"
DEFAULT_FORMAT = "opendata2020"  # the layout the events are made in (ttH_adv.inputs.ntuple_formats translates)
MEV = 1000.0
HIGGS_MASS = 125.0
MC_RUN_NUMBER = 284500  # mc16a-style run number for MC
# Data run ranges and luminosity shares per year (2015-2018).
DATA_RUNS = ((276262, 284484, 3.2), (297730, 311481, 33.0), (325713, 340453, 44.3), (348885, 364292, 58.5))

# Photon energy resolution sigma/E = a/sqrt(E) (+) c, barrel/end-cap; converted photons worse.
PHOTON_SAMPLING = (0.10, 0.15)
PHOTON_CONSTANT = (0.012, 0.015)
PHOTON_CONVERTED_FRACTION = 0.3
PHOTON_CONVERTED_RESOLUTION_FACTOR = 1.8
PHOTON_ACCEPTANCE_ETA = 2.5

# Photon identification/isolation: prompt photons vs jets faking photons (GeV).
PROMPT_TIGHT_EFF = (0.85, 0.10)  # 0.85 + 0.10 * min(pT / 100 GeV, 1)
FAKE_TIGHT_EFF = 0.30
PROMPT_PTCONE_MEAN, FAKE_PTCONE_MEAN = 0.6, 7.0
PROMPT_ETCONE = (0.3, 1.2)  # Gaussian mean, width
FAKE_ETCONE = (2.0, 6.0)  # offset + exponential mean

# b-tagging: MV2c10 77% working point and per-flavour efficiencies there.
MV2C10_WP77 = MV2C10_WORKING_POINTS[1]
BTAG_EFF = {5: 0.77, 4: 0.16, 0: 0.0075}
BTAG_FAIL_SHAPE = {5: 0.4, 4: 1.0, 0: 3.0}  # failing score = -1 + (WP+1) * u**shape

# W decay modes: hadronic, e nu, mu nu, hadronic tau (one jet).
W_MODES = np.array([0.676, 0.1445, 0.1445, 0.035])

JET_MIN_PT = 20.0
JET_MAX_ETA = 4.5
LEPTON_MIN_PT = 7.0


@dataclass(frozen=True)
class ContinuumModel:
    """Continuum diphoton kinematics; see the module docstring for the m_yy coupling."""

    slope: float = 0.020  # 1/GeV, exponential fall of m_yy
    boost_scale: float = 40.0  # GeV, mean diphoton pT at m_yy = 125 GeV
    boost_power: float = 1.5  # k in (125 GeV / m_yy)^k
    boost_shape: float = 1.5  # Gamma shape of the diphoton pT
    rapidity_sigma: float = 1.2
    forward_fraction: float = 0.5  # share of qq -> yy (forward-peaked) decays at m_yy = 125 GeV
    forward_slope: float = 0.4  # its rise per 25 GeV of m_yy (the gg box falls faster with m_yy)


@dataclass(frozen=True)
class HiggsModel:
    pt_shape: float
    pt_scale: float  # GeV
    rapidity_sigma: float


CONTINUUM = ContinuumModel()
CONTINUUM_FAKES = ContinuumModel(slope=0.026)  # y+jet and jet+jet fall faster
CONTINUUM_TTYY = ContinuumModel(slope=0.018, boost_scale=80.0, rapidity_sigma=1.0)
HIGGS = {
    "ttH": HiggsModel(2.0, 60.0, 1.0),
    "ggH": HiggsModel(1.2, 25.0, 1.6),
    "VBF": HiggsModel(1.5, 60.0, 1.4),
    "WH": HiggsModel(2.0, 45.0, 1.3),
    "ZH": HiggsModel(2.0, 45.0, 1.3),
    "tH": HiggsModel(2.0, 55.0, 1.3),
}
# Negative-weight fraction (NLO generators) per sample; data has none.
@dataclass(frozen=True)
class Mismodelling:
    """How the generated data differ from the simulation, in the data only (all zero: they agree, the default).

    The data's detector is not the simulated one: its jet energy scale is off by ``jet_energy_scale``
    (every data jet's pT and energy times 1 + it) and its photons' calorimeter isolation reads
    ``photon_etcone_shift`` GeV more (etcone20, which the tight isolation cuts on).  No random number is
    drawn for it, so the simulation and every other data quantity are event for event those of a run
    without it."""

    jet_energy_scale: float = 0.0
    photon_etcone_shift: float = 0.0

    @property
    def any(self) -> bool:
        """Whether the data differ from the simulation at all."""
        return bool(self.jet_energy_scale or self.photon_etcone_shift)


AGREEING = Mismodelling()
DATA_MISMODELLING = Mismodelling(jet_energy_scale=0.03, photon_etcone_shift=0.5)  # `generate --mismodel`

NEGATIVE_WEIGHT_FRACTION = {"ttH": 0.03, "tH": 0.05, "ttyy": 0.08, "yyjets": 0.02}


# --------------------------------------------------------------------------- kinematics


def _truncated_exponential(rng: np.random.Generator, n: int, slope: float, lo: float, hi: float) -> np.ndarray:
    """Sample x in [lo, hi] with density proportional to exp(-slope * x)."""
    u = rng.random(n)
    return lo - np.log1p(-u * (1.0 - np.exp(-slope * (hi - lo)))) / slope


def _forward_cos_theta(rng: np.random.Generator, n: int, cmax: float = 0.98) -> np.ndarray:
    """cos(theta*) from (1+c^2)/(1-c^2) on |c| < cmax (qq -> yy), by vectorised rejection."""
    fmax = (1 + cmax**2) / (1 - cmax**2)
    out = np.empty(0)
    while out.size < n:
        c = rng.uniform(-cmax, cmax, 2 * n)
        keep = rng.random(2 * n) * fmax < (1 + c**2) / (1 - c**2)
        out = np.concatenate([out, c[keep]])
    return out[:n]


def _two_body_decay(rng: np.random.Generator, mass: np.ndarray, pt: np.ndarray, y: np.ndarray,
                    cos_theta: np.ndarray) -> tuple[np.ndarray, ...]:
    """Decay a system of given mass, pT and rapidity into two massless particles.

    Returns (pt, eta, phi, energy), each of shape (n, 2), in the lab frame.
    """
    n = mass.size
    sin_theta = np.sqrt(1 - cos_theta**2)
    phi_star = rng.uniform(-np.pi, np.pi, n)
    half = mass / 2
    p1 = np.stack([half, half * sin_theta * np.cos(phi_star), half * sin_theta * np.sin(phi_star), half * cos_theta])
    p2 = p1 * np.array([1, -1, -1, -1])[:, None]
    phi_sys = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(mass**2 + pt**2)
    system = np.stack([mt * np.cosh(y), pt * np.cos(phi_sys), pt * np.sin(phi_sys), mt * np.sinh(y)])
    beta = system[1:] / system[0]
    beta2 = (beta**2).sum(axis=0)
    gamma = system[0] / mass

    def boost(p: np.ndarray) -> np.ndarray:
        bp = (beta * p[1:]).sum(axis=0)
        coef = np.divide((gamma - 1) * bp, beta2, out=np.zeros_like(bp), where=beta2 > 0) + gamma * p[0]
        return np.concatenate([(gamma * (p[0] + bp))[None], p[1:] + coef * beta])

    out = [boost(p1), boost(p2)]
    px = np.stack([o[1] for o in out], axis=1)
    py = np.stack([o[2] for o in out], axis=1)
    pz = np.stack([o[3] for o in out], axis=1)
    energy = np.stack([o[0] for o in out], axis=1)
    ptl = np.hypot(px, py)
    return ptl, np.arcsinh(pz / ptl), np.arctan2(py, px), energy


def _higgs_diphoton(rng: np.random.Generator, n: int, model: HiggsModel) -> dict[str, np.ndarray]:
    mass = np.full(n, HIGGS_MASS)
    pt = rng.gamma(model.pt_shape, model.pt_scale / model.pt_shape, n)
    y = rng.normal(0, model.rapidity_sigma, n)
    pt, eta, phi, e = _two_body_decay(rng, mass, pt, y, rng.uniform(-1, 1, n))
    return {"pt": pt, "eta": eta, "phi": phi, "energy": e, "prompt": np.ones((n, 2), bool)}


def _continuum_diphoton(rng: np.random.Generator, n: int, model: ContinuumModel,
                        prompt: np.ndarray) -> dict[str, np.ndarray]:
    # Generate beyond the analysis window so resolution and cuts shape no edge inside it.
    mass = _truncated_exponential(rng, n, model.slope, 90.0, 200.0)
    scale = model.boost_scale * (HIGGS_MASS / mass) ** model.boost_power
    pt = rng.gamma(model.boost_shape, scale / model.boost_shape)
    y = rng.normal(0, model.rapidity_sigma, n)
    forward_share = np.clip(model.forward_fraction + model.forward_slope * (mass - HIGGS_MASS) / 25.0, 0, 1)
    forward = rng.random(n) < forward_share
    cos_theta = np.where(forward, _forward_cos_theta(rng, n), rng.uniform(-1, 1, n))
    pt, eta, phi, e = _two_body_decay(rng, mass, pt, y, cos_theta)
    return {"pt": pt, "eta": eta, "phi": phi, "energy": e, "prompt": prompt}


# --------------------------------------------------------------------------- objects


def _regular(fields: dict[str, np.ndarray]) -> ak.Array:
    """(n, k) numpy fields -> jagged record array with k objects per event."""
    return ak.zip({k: ak.from_regular(ak.Array(v)) for k, v in fields.items()})


def _jagged(counts: np.ndarray, fields: dict[str, np.ndarray]) -> ak.Array:
    return ak.zip({k: ak.unflatten(v, counts) for k, v in fields.items()})


def _sorted_by_pt(objects: ak.Array) -> ak.Array:
    return objects[ak.argsort(objects.pt, axis=1, ascending=False)]


def _extra_photons(rng: np.random.Generator, n: int) -> ak.Array:
    """A soft third photon (often a fake) in 8% of events."""
    counts = (rng.random(n) < 0.08).astype(np.int64)
    m = int(counts.sum())
    return _jagged(counts, {
        "pt": 10 + rng.exponential(10, m), "eta": rng.normal(0, 1.3, m),
        "phi": rng.uniform(-np.pi, np.pi, m), "energy": np.zeros(m), "prompt": rng.random(m) < 0.3,
    })


def _jets(rng: np.random.Generator, counts: np.ndarray, *, shape: float, scale: float, offset: float = 0.0,
          eta_sigma: float = 1.4, eta_center: float = 0.0, flavour: int | np.ndarray = 0,
          pileup: bool = False) -> ak.Array:
    """Jets with Gamma-distributed pT (offset + Gamma(shape, scale)) and Gaussian eta."""
    m = int(counts.sum())
    sign = rng.choice([-1.0, 1.0], m) if eta_center else 1.0
    flav = np.broadcast_to(np.asarray(flavour), (m,)) if np.ndim(flavour) == 0 else flavour
    return _jagged(counts, {
        "pt": offset + rng.gamma(shape, scale, m),
        "eta": sign * eta_center + rng.normal(0, eta_sigma, m),
        "phi": rng.uniform(-np.pi, np.pi, m),
        "flavour": np.asarray(flav, dtype=np.int32),
        "pileup": np.full(m, pileup),
    })


def _light_or_heavy(rng: np.random.Generator, m: int, f_b: float, f_c: float) -> np.ndarray:
    u = rng.random(m)
    return np.where(u < f_b, 5, np.where(u < f_b + f_c, 4, 0)).astype(np.int32)


def _continuum_jets(rng: np.random.Generator, mean: np.ndarray | float, n: int,
                    f_b: float = 0.03, f_c: float = 0.08) -> ak.Array:
    counts = rng.poisson(mean, n)
    flav = _light_or_heavy(rng, int(counts.sum()), f_b, f_c)
    return _jets(rng, counts, shape=1.0, scale=30.0, offset=15.0, eta_sigma=1.6, flavour=flav)


def _pileup_jets(rng: np.random.Generator, n: int) -> ak.Array:
    return _jets(rng, rng.poisson(0.3, n), shape=1.0, scale=6.0, offset=18.0, eta_sigma=1.8, pileup=True)


def _leptons(rng: np.random.Generator, n_e: np.ndarray, n_mu: np.ndarray, *, fake: bool = False) -> ak.Array:
    counts = n_e + n_mu
    m = int(counts.sum())
    # Within each event electrons come first, then muons (sorted by pT later).
    local = ak.local_index(ak.unflatten(np.zeros(m), counts), axis=1)
    is_e = ak.flatten(local < n_e[:, None]).to_numpy() if m else np.zeros(0, bool)
    return _jagged(counts, {
        "pt": 3 + rng.gamma(2.0, 15.0 if fake else 22.0, m),
        "eta": rng.normal(0, 1.1, m),
        "phi": rng.uniform(-np.pi, np.pi, m),
        "type": np.where(is_e, 11, 13).astype(np.uint32),
        "fake": np.full(m, fake),
    })


def _w_decays(rng: np.random.Generator, n: int, n_w: int) -> dict[str, np.ndarray]:
    """Counts of light jets, electrons, muons and neutrinos from n_w W bosons per event."""
    modes = rng.choice(4, size=(n, n_w), p=W_MODES)
    return {
        "light": 2 * (modes == 0).sum(1) + (modes == 3).sum(1),
        "e": (modes == 1).sum(1), "mu": (modes == 2).sum(1),
        "nu": (modes >= 1).sum(1),
    }


def _neutrinos(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed neutrino px, py per event."""
    m = int(counts.sum())
    pt = rng.gamma(2.0, 20.0, m)
    phi = rng.uniform(-np.pi, np.pi, m)
    idx = np.repeat(np.arange(counts.size), counts)
    return (np.bincount(idx, pt * np.cos(phi), counts.size), np.bincount(idx, pt * np.sin(phi), counts.size))


@dataclass
class TruthEvents:
    """Generator-level objects of a block, before detector effects (GeV)."""

    photons: ak.Array
    jets: ak.Array
    leptons: ak.Array
    nu_px: np.ndarray
    nu_py: np.ndarray


def _hard_content(rng: np.random.Generator, n: int, *, b: np.ndarray, light: np.ndarray,
                  e: np.ndarray, mu: np.ndarray, nu: np.ndarray, isr: float,
                  forward: np.ndarray | None = None) -> tuple[ak.Array, ak.Array, np.ndarray, np.ndarray]:
    """Jets, leptons and neutrinos from a hard process: b quarks, W/Z quarks, ISR, forward jets."""
    parts = [
        _jets(rng, b, shape=3.0, scale=22.0, eta_sigma=1.2, flavour=5),
        _jets(rng, light, shape=2.5, scale=18.0, eta_sigma=1.3,
              flavour=_light_or_heavy(rng, int(light.sum()), 0.0, 0.12)),
        _continuum_jets(rng, isr, n),
        _pileup_jets(rng, n),
    ]
    if forward is not None:
        parts.append(_jets(rng, forward, shape=2.0, scale=30.0, offset=10.0, eta_sigma=0.9, eta_center=2.8))
    jets = ak.concatenate(parts, axis=1)
    nu_px, nu_py = _neutrinos(rng, nu)
    return jets, _leptons(rng, e, mu), nu_px, nu_py


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.int64)


def _model_ttbar_like(rng: np.random.Generator, n: int, photons: ak.Array, isr: float = 0.7,
                      n_top: int = 2) -> TruthEvents:
    w = _w_decays(rng, n, n_top)
    jets, leptons, px, py = _hard_content(rng, n, b=np.full(n, n_top), isr=isr, **w)
    return TruthEvents(photons, jets, leptons, px, py)


def _model_higgs(rng: np.random.Generator, n: int, mode: str) -> TruthEvents:
    photons = ak.concatenate([_regular(_higgs_diphoton(rng, n, HIGGS[mode])), _extra_photons(rng, n)], axis=1)
    zero = _zeros(n)
    if mode == "ttH":
        return _model_ttbar_like(rng, n, photons)
    if mode == "tH":
        w = _w_decays(rng, n, 1)
        jets, leptons, px, py = _hard_content(rng, n, b=np.ones(n, np.int64), isr=0.5,
                                              forward=np.ones(n, np.int64), **w)
        return TruthEvents(photons, jets, leptons, px, py)
    if mode == "ggH":
        jets, leptons, px, py = _hard_content(rng, n, b=zero, light=zero, e=zero, mu=zero, nu=zero, isr=0.8)
    elif mode == "VBF":
        jets, leptons, px, py = _hard_content(rng, n, b=zero, light=zero, e=zero, mu=zero, nu=zero,
                                              isr=0.3, forward=np.full(n, 2))
    elif mode == "WH":
        w = _w_decays(rng, n, 1)
        jets, leptons, px, py = _hard_content(rng, n, b=zero, isr=0.4, **w)
    elif mode == "ZH":
        # Z -> qq (70%, 15% of them bb), ll (6.7%), nu nu (20%), tau tau treated as nu nu.
        u = rng.random(n)
        qq, ll = u < 0.70, (u >= 0.70) & (u < 0.767)
        bb = qq & (rng.random(n) < 0.15)
        e = (ll & (rng.random(n) < 0.5)) * 2
        jets, leptons, px, py = _hard_content(
            rng, n, b=2 * bb, light=2 * (qq & ~bb), e=e, mu=2 * ll - e, nu=2 * (u >= 0.767), isr=0.4)
    else:
        raise ValueError(f"unknown Higgs mode {mode!r}")
    return TruthEvents(photons, jets, leptons, px, py)


def _continuum_photons(rng: np.random.Generator, n: int, n_fake: np.ndarray,
                       model_prompt: ContinuumModel, model_fake: ContinuumModel) -> ak.Array:
    """Continuum diphotons where n_fake (0, 1 or 2) of the photons are jets faking photons."""
    prompt = np.stack([n_fake < 2, n_fake < 1], axis=1)
    swap = rng.random(n) < 0.5  # which photon of a y+jet pair is the fake
    prompt = np.where(swap[:, None] & (n_fake == 1)[:, None], prompt[:, ::-1], prompt)
    pp = _continuum_diphoton(rng, n, model_prompt, prompt)
    ff = _continuum_diphoton(rng, n, model_fake, prompt)
    has_fake = (n_fake > 0)[:, None]
    fields = {k: np.where(has_fake, ff[k], pp[k]) for k in pp}
    return ak.concatenate([_regular(fields), _extra_photons(rng, n)], axis=1)


def _fake_count(u: np.ndarray, shares: tuple[float, float, float]) -> np.ndarray:
    """0, 1 or 2 fake photons per event for uniform draws ``u``, in the given shares."""
    return np.where(u < shares[0], 0, np.where(u < shares[0] + shares[1], 1, 2))


def _model_data(rng: np.random.Generator, n: int) -> TruthEvents:
    return _model_diphoton_mixture(rng, n, _fake_count(rng.random(n), DATA_FAKE_SHARES))


def _model_reducible(rng: np.random.Generator, n: int) -> TruthEvents:
    """The data's events with one or two fake photons, alone: the simulated y+jet / jet+jet background."""
    _, yj, jj = DATA_FAKE_SHARES
    return _model_diphoton_mixture(rng, n, _fake_count(rng.random(n), (0.0, yj / (yj + jj), jj / (yj + jj))))


def _model_diphoton_mixture(rng: np.random.Generator, n: int, n_fake: np.ndarray) -> TruthEvents:
    """Continuum diphotons with ``n_fake`` fake photons each, 6% of them with top-pair-like hadronic content."""
    photons = _continuum_photons(rng, n, n_fake, CONTINUUM, CONTINUUM_FAKES)
    top_like = rng.random(n) < 0.06
    tt = _model_ttbar_like(rng, n, photons, isr=0.5)
    cont = _continuum_jets(rng, np.where(n_fake > 0, 2.2, 1.6), n)
    jets = ak.where(top_like, tt.jets, cont)
    # A few non-prompt (fake) leptons in non-top events.
    fake_lep = (~top_like & (rng.random(n) < 0.02)).astype(np.int64)
    leptons = ak.where(top_like, tt.leptons, _leptons(rng, fake_lep, _zeros(n), fake=True))
    jets = ak.concatenate([jets, _pileup_jets(rng, n)], axis=1)
    return TruthEvents(photons, jets, leptons, np.where(top_like, tt.nu_px, 0.0), np.where(top_like, tt.nu_py, 0.0))


def _model_yyjets(rng: np.random.Generator, n: int) -> TruthEvents:
    photons = _continuum_photons(rng, n, _zeros(n), CONTINUUM, CONTINUUM)
    jets = ak.concatenate([_continuum_jets(rng, 1.6, n), _pileup_jets(rng, n)], axis=1)
    zero = _zeros(n)
    return TruthEvents(photons, jets, _leptons(rng, zero, zero), np.zeros(n), np.zeros(n))


def _model_ttyy(rng: np.random.Generator, n: int) -> TruthEvents:
    photons = _continuum_photons(rng, n, _zeros(n), CONTINUUM_TTYY, CONTINUUM_TTYY)
    return _model_ttbar_like(rng, n, photons)


def generate_truth(rng: np.random.Generator, n: int, model: str) -> TruthEvents:
    """Generator-level events of one sample's event model."""
    if model == "data":
        return _model_data(rng, n)
    if model == "reducible":
        return _model_reducible(rng, n)
    if model == "yyjets":
        return _model_yyjets(rng, n)
    if model == "ttyy":
        return _model_ttyy(rng, n)
    return _model_higgs(rng, n, model)


# --------------------------------------------------------------------------- detector


def _photon_response(rng: np.random.Generator, ph: ak.Array) -> dict[str, np.ndarray]:
    """Smear, identify and isolate photons; flat arrays in GeV."""
    pt, eta, phi = (ak.flatten(ph[f]).to_numpy() for f in ("pt", "eta", "phi"))
    prompt = ak.flatten(ph.prompt).to_numpy()
    m = pt.size
    e_true = pt * np.cosh(eta)
    endcap = np.abs(eta) > 1.37
    converted = rng.random(m) < PHOTON_CONVERTED_FRACTION
    a = np.where(endcap, PHOTON_SAMPLING[1], PHOTON_SAMPLING[0])
    c = np.where(endcap, PHOTON_CONSTANT[1], PHOTON_CONSTANT[0])
    rel = np.hypot(a / np.sqrt(e_true), c) * np.where(converted, PHOTON_CONVERTED_RESOLUTION_FACTOR, 1.0)
    scale = np.clip(1 + rel * rng.standard_normal(m), 0.3, None)
    pt = pt * scale
    eff_prompt = PROMPT_TIGHT_EFF[0] + PROMPT_TIGHT_EFF[1] * np.minimum(pt / 100.0, 1.0)
    tight = rng.random(m) < np.where(prompt, eff_prompt, FAKE_TIGHT_EFF)
    ptcone = np.where(prompt, rng.exponential(PROMPT_PTCONE_MEAN, m), rng.exponential(FAKE_PTCONE_MEAN, m))
    etcone = np.where(prompt, rng.normal(*PROMPT_ETCONE, m), FAKE_ETCONE[0] + rng.exponential(FAKE_ETCONE[1], m))
    return {
        "pt": pt, "eta": eta, "phi": phi, "E": pt * np.cosh(eta),
        "isTightID": tight, "ptcone30": ptcone, "etcone20": etcone,
        "convType": converted.astype(np.int32),
        "truthMatched": prompt, "trigMatched": pt > 25.0,
        "pt_syst": pt * (0.004 + 0.003 * np.abs(eta)),
    }


def _mv2c10(rng: np.random.Generator, flavour: np.ndarray) -> np.ndarray:
    eff = np.select([flavour == 5, flavour == 4], [BTAG_EFF[5], BTAG_EFF[4]], BTAG_EFF[0])
    shape = np.select([flavour == 5, flavour == 4], [BTAG_FAIL_SHAPE[5], BTAG_FAIL_SHAPE[4]], BTAG_FAIL_SHAPE[0])
    u = rng.random(flavour.size)
    passing = 1 - (1 - MV2C10_WP77) * rng.random(flavour.size) ** 2
    failing = -1 + (MV2C10_WP77 + 1) * u**shape
    return np.where(rng.random(flavour.size) < eff, passing, failing)


def _jet_response(rng: np.random.Generator, jets: ak.Array) -> dict[str, np.ndarray]:
    pt, eta, phi = (ak.flatten(jets[f]).to_numpy() for f in ("pt", "eta", "phi"))
    flavour = ak.flatten(jets.flavour).to_numpy()
    pileup = ak.flatten(jets.pileup).to_numpy()
    m = pt.size
    pt = pt * np.clip(1 + np.hypot(0.8 / np.sqrt(pt), 0.05) * rng.standard_normal(m), 0.2, None)
    mass = pt * rng.uniform(0.05, 0.2, m)
    jvt_hard = np.where(rng.random(m) < 0.95, 1 - 0.1 * rng.beta(1, 6, m), rng.uniform(0, 0.59, m))
    return {
        "pt": pt, "eta": eta, "phi": phi, "E": np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2),
        "MV2c10": _mv2c10(rng, flavour),
        "jvt": np.where(pileup, rng.beta(1, 8, m), jvt_hard),
        "trueflav": flavour, "truthMatched": ~pileup,
        "pt_syst": pt * (0.01 + 0.03 * np.exp(-pt / 50.0) + 0.005 * np.abs(eta)),
    }


def _lepton_response(rng: np.random.Generator, leps: ak.Array) -> dict[str, np.ndarray]:
    pt, eta, phi = (ak.flatten(leps[f]).to_numpy() for f in ("pt", "eta", "phi"))
    ltype = ak.flatten(leps["type"]).to_numpy()
    fake = ak.flatten(leps.fake).to_numpy()
    m = pt.size
    is_e = ltype == 11
    pt = pt * (1 + np.where(is_e, 0.02, 0.015) * rng.standard_normal(m))
    mass = np.where(is_e, 0.000511, 0.10566)
    return {
        "pt": pt, "eta": eta, "phi": phi, "E": np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2),
        "charge": rng.choice(np.array([-1, 1], dtype=np.int32), m),
        "type": ltype,
        "isTightID": rng.random(m) < np.where(fake, 0.5, np.where(is_e, 0.94, 0.97)),
        "ptcone30": np.where(fake, rng.exponential(6.0, m), rng.exponential(0.4, m)),
        "etcone20": np.where(fake, rng.exponential(6.0, m), rng.normal(0.2, 0.8, m)),
        "z0": rng.normal(0, 0.05, m), "trackd0pvunbiased": rng.normal(0, 0.01, m),
        "truthMatched": ~fake, "trigMatched": pt > 27.0,
        "pt_syst": pt * np.where(is_e, 0.005, 0.003),
    }


def _acceptance(objects: ak.Array, min_pt: float, max_eta: float) -> ak.Array:
    return objects[(objects.pt > min_pt) & (abs(objects.eta) < max_eta)]


def _with_response(objects: ak.Array, response: dict[str, np.ndarray]) -> ak.Array:
    counts = ak.num(objects, axis=1).to_numpy()
    return _sorted_by_pt(_jagged(counts, response))


def _event_weights(rng: np.random.Generator, n: int, spec: SampleSpec) -> np.ndarray:
    """mcWeight per event: a mild spread with the sample's negative-weight fraction."""
    if spec.is_data:
        return np.ones(n)
    sign = np.where(rng.random(n) < NEGATIVE_WEIGHT_FRACTION.get(spec.name, 0.0), -1.0, 1.0)
    return sign * rng.lognormal(0.0, 0.05, n)


def mismodelled(objects: ak.Array, scale: float = 0.0, shifts: dict[str, float] | None = None) -> ak.Array:
    """Data objects as the data's detector sees them: pT and energy times 1 + ``scale``, fields shifted."""
    fields = {f: objects[f] for f in objects.fields}
    if scale:
        fields["pt"], fields["E"] = objects.pt * (1 + scale), objects.E * (1 + scale)
    for name, shift in (shifts or {}).items():
        fields[name] = objects[name] + shift
    return ak.zip(fields)


def reconstruct(rng: np.random.Generator, truth: TruthEvents, spec: SampleSpec, mc_weight: np.ndarray,
                sum_weights: float, first_event: int, mismodelling: Mismodelling = AGREEING) -> dict[str, object]:
    """Detector response and event-level branches for a block, in file units (MeV); the data's detector
    ``mismodelling`` applied to data."""
    n = len(truth.photons)
    photons = _acceptance(truth.photons, 5.0, PHOTON_ACCEPTANCE_ETA)
    photons = _with_response(photons, _photon_response(rng, photons))
    jets = _acceptance(truth.jets, 0.0, JET_MAX_ETA)
    jets = _with_response(jets, _jet_response(rng, jets))
    if spec.is_data and mismodelling.any:  # after the responses: the random streams are untouched
        jets = mismodelled(jets, mismodelling.jet_energy_scale)
        photons = mismodelled(photons, shifts={"etcone20": mismodelling.photon_etcone_shift})
    jets = jets[jets.pt > JET_MIN_PT]
    leptons = _acceptance(truth.leptons, LEPTON_MIN_PT, 2.5)
    leptons = _with_response(leptons, _lepton_response(rng, leptons))

    met_x = truth.nu_px + rng.normal(0, 10.0, n)
    met_y = truth.nu_py + rng.normal(0, 10.0, n)
    met = np.hypot(met_x, met_y)

    pt = ak.fill_none(ak.pad_none(photons.pt, 2, axis=1)[:, :2], 0.0)
    trig = (pt[:, 0] > 35) & (pt[:, 1] > 25) & (rng.random(n) < 0.99)
    n_e = ak.sum(leptons["type"] == 11, axis=1).to_numpy()
    n_mu = ak.sum(leptons["type"] == 13, axis=1).to_numpy()
    is_mc = not spec.is_data

    def sf(sigma: float, mean: float = 1.0, power: np.ndarray | int = 1) -> np.ndarray:
        return (rng.normal(mean, sigma, n) ** power) if is_mc else np.ones(n)

    if spec.is_data:
        years = rng.choice(len(DATA_RUNS), n, p=np.array([r[2] for r in DATA_RUNS]) / sum(r[2] for r in DATA_RUNS))
        lo = np.array([r[0] for r in DATA_RUNS])[years]
        hi = np.array([r[1] for r in DATA_RUNS])[years]
        run = (lo + rng.random(n) * (hi - lo)).astype(np.int32)
    else:
        run = np.full(n, MC_RUN_NUMBER, np.int32)

    def mev(objs: ak.Array, energy_fields: tuple[str, ...]) -> dict[str, ak.Array]:
        return {f: (objs[f] * MEV if f in energy_fields else objs[f]) for f in objs.fields}

    e_fields = ("pt", "E", "ptcone30", "etcone20", "pt_syst")
    return {
        "runNumber": run,
        "eventNumber": np.arange(first_event, first_event + n, dtype=np.int32) + 1,
        "channelNumber": np.full(n, spec.dsid, np.int32) if is_mc else run,
        "mcWeight": mc_weight.astype(np.float32),
        "SumWeights": np.full(n, sum_weights if is_mc else 0.0, np.float32),
        "XSection": np.full(n, spec.xsec_pb, np.float32),
        "scaleFactor_PILEUP": (rng.lognormal(-0.0113, 0.15, n) if is_mc else np.ones(n)).astype(np.float32),
        "scaleFactor_ELE": sf(0.005, 0.98, n_e).astype(np.float32),
        "scaleFactor_MUON": sf(0.003, 0.99, n_mu).astype(np.float32),
        "scaleFactor_PHOTON": sf(0.01, 0.985).astype(np.float32),
        "scaleFactor_TAU": np.ones(n, np.float32),
        "scaleFactor_BTAG": sf(0.03).astype(np.float32),
        "scaleFactor_LepTRIGGER": np.where(n_e + n_mu > 0, sf(0.005, 0.99), 1.0).astype(np.float32),
        "scaleFactor_PhotonTRIGGER": sf(0.003, 0.995).astype(np.float32),
        "trigE": (n_e > 0) & (rng.random(n) < 0.9),
        "trigM": (n_mu > 0) & (rng.random(n) < 0.9),
        "trigP": np.asarray(trig),
        "met_et": (met * MEV).astype(np.float32),
        "met_phi": np.arctan2(met_y, met_x).astype(np.float32),
        "met_et_syst": ((0.05 * met + 2.0) * MEV).astype(np.float32),
        "photon": ak.zip(mev(photons, e_fields)),
        "jet": ak.zip(mev(jets, e_fields)),
        "lep": ak.zip(mev(leptons, e_fields)),
    }


# --------------------------------------------------------------------------- writing

# Output dtypes of the Open Data branches (floats are float32 in the files).
_INT_FIELDS = {"convType": np.int32, "trueflav": np.int32, "charge": np.int32, "type": np.uint32}
_BOOL_FIELDS = {"isTightID", "truthMatched", "trigMatched"}


def _typed(block: dict[str, object]) -> dict[str, object]:
    out = {}
    for name, value in block.items():
        if name in ("photon", "jet", "lep"):
            fields = {}
            for f in value.fields:
                dtype = _INT_FIELDS.get(f, bool if f in _BOOL_FIELDS else np.float32)
                fields[f] = ak.values_astype(value[f], dtype)
            out[name] = ak.zip(fields)
        else:
            out[name] = value
    return out


def _block_seeds(seed: int, sample_index: int, block: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the weights and the kinematics of one block."""
    ss = np.random.SeedSequence([seed, sample_index, block])
    w, k = ss.spawn(2)
    return np.random.default_rng(w), np.random.default_rng(k)


def _block_sizes(n_events: int) -> list[int]:
    full, rest = divmod(n_events, BLOCK_SIZE)
    return [BLOCK_SIZE] * full + ([rest] if rest else [])


def sample_weights(spec: SampleSpec, sample_index: int, n_events: int, seed: int) -> list[np.ndarray]:
    """mcWeight of every block of a sample (first pass: SumWeights must be known up front)."""
    # float32 as stored, so the sum below matches a sum over the file's branch.
    return [_event_weights(_block_seeds(seed, sample_index, b)[0], size, spec).astype(np.float32)
            for b, size in enumerate(_block_sizes(n_events))]


def sum_of_weights(weights: list[np.ndarray]) -> float:
    """Sum of mcWeight over a whole sample, in double precision."""
    return float(sum(w.sum(dtype=np.float64) for w in weights))


def generate_blocks(spec: SampleSpec, sample_index: int, n_events: int, seed: int,
                    mismodelling: Mismodelling = AGREEING) -> Iterator[dict[str, object]]:
    """Yield the sample's events block by block, in file units and types."""
    weights = sample_weights(spec, sample_index, n_events, seed)
    sum_weights = sum_of_weights(weights)
    first = 0
    for b, size in enumerate(_block_sizes(n_events)):
        rng = _block_seeds(seed, sample_index, b)[1]
        truth = generate_truth(rng, size, spec.model)
        yield _typed(reconstruct(rng, truth, spec, weights[b], sum_weights, first, mismodelling))
        first += size


def _slice(block: dict[str, object], start: int, stop: int) -> dict[str, object]:
    return {k: v[start:stop] for k, v in block.items()}


def _file_ranges(n_events: int, n_files: int) -> list[tuple[int, int]]:
    edges = [n_events * i // n_files for i in range(n_files + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _write_sample(spec: SampleSpec, sample_index: int, n_events: int, n_files: int, seed: int,
                  out_dir: Path, advance, format_name: str = DEFAULT_FORMAT,
                  mismodelling: Mismodelling = AGREEING) -> tuple[list[str], float]:
    """Write one sample's files in an input format; returns their paths (relative to out_dir) and SumWeights."""
    ntuple = writer(format_name)
    ranges = _file_ranges(n_events, n_files)
    paths = [ntuple.file_name(spec, i, n_files) for i in range(n_files)]
    for p in paths:
        (out_dir / p).parent.mkdir(parents=True, exist_ok=True)
    files = [uproot.recreate(out_dir / p) for p in paths]
    trees: list = [None] * n_files
    sum_weights = sum_of_weights(sample_weights(spec, sample_index, n_events, seed)) if not spec.is_data else 0.0
    facts = SampleFacts(spec, n_events, sum_weights)
    tree_name = ntuple.profile().branches.tree
    position = 0
    try:
        blocks = generate_blocks(spec, sample_index, n_events, seed, mismodelling)
        for block in (ntuple.translate(b, facts) for b in blocks):
            size = len(block["eventNumber"])
            for i, (lo, hi) in enumerate(ranges):
                start, stop = max(lo, position) - position, min(hi, position + size) - position
                if stop <= start:
                    continue
                part = _slice(block, start, stop)
                if trees[i] is None:
                    trees[i] = _make_tree(files[i], part, tree_name)
                trees[i].extend(part)
            position += size
            advance(size)
        for i, tree in enumerate(trees):
            if tree is None:  # a file with no events still gets a valid (empty) tree
                empty = _slice(ntuple.translate(next(generate_blocks(spec, sample_index, 1, seed)), facts), 0, 0)
                _make_tree(files[i], empty, tree_name)
    finally:
        for f in files:
            f.close()
    return paths, sum_weights


def _write_sample_quietly(job: tuple) -> tuple[list[str], float]:
    """``_write_sample`` in a worker process (no progress callback)."""
    *arguments, format_name, mismodelling = job
    return _write_sample(*arguments, lambda size: None, format_name, mismodelling)


def _make_tree(file, block: dict[str, object], tree_name: str = TREE_NAME):
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in block.items()}
    return file.mktree(tree_name, types, title="ttH-adv synthetic Run-2 ntuple (ATLAS Open Data format)",
                       counter_name=lambda counted: f"{counted}_n")


def events_per_sample(n_events: int) -> dict[str, int]:
    """Each sample's events: the requested count times its share (at least 1).  The shares of data, signal and the
    yy and resonant backgrounds sum to 1; the reducible MC's comes on top."""
    return {s.name: max(1, round(n_events * s.share)) for s in SAMPLES}


def generate_dataset(out_dir: str | Path, n_events: int, seed: int = 1, *,
                     files_per_sample: int | None = None, samples: list[str] | None = None,
                     show_progress: bool = False, oversample: dict[str, int] | None = None,
                     workers: int = 1, format_name: str = DEFAULT_FORMAT,
                     mismodelling: Mismodelling = AGREEING) -> Path:
    """Generate the synthetic ntuples and ``datasets.json``; returns the manifest path.

    ``oversample`` multiplies the event count of MC samples (e.g. ``{"yyjets": 50}`` for
    background templates with statistics to spare): the model and the luminosity, set by the
    data count, are unchanged; the first events are those of the plain run (seeded blocks).
    ``workers > 1`` writes the samples in parallel processes (the same events, no progress bar).
    ``format_name`` is the input format written (``ttH_adv.inputs.ntuple_formats``): the same events in
    the 2020 release's layout (default) or the 2025 one's.  ``mismodelling`` makes the data's detector
    differ from the simulated one (``Mismodelling``; ``DATA_MISMODELLING`` is ``generate --mismodel``).
    """
    ntuple = writer(format_name)
    if n_events < 1:
        raise ConfigError(f"--events must be positive, got {n_events}")
    unknown = sorted(set(samples or ()) - set(SAMPLES_BY_NAME))
    if unknown:
        raise ConfigError(f"--samples: no generated sample {unknown}; the generator makes {list(SAMPLES_BY_NAME)}")
    oversample = oversample or {}
    unknown = sorted(set(oversample) - set(SAMPLES_BY_NAME))
    if unknown or any(SAMPLES_BY_NAME[s].is_data or f < 1 for s, f in oversample.items() if s in SAMPLES_BY_NAME):
        raise ValueError(f"oversample takes MC samples with factors >= 1, got {oversample} (unknown: {unknown})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = [SAMPLES_BY_NAME[s] for s in samples] if samples else list(SAMPLES)
    counts = events_per_sample(n_events)
    luminosity = data_luminosity_pb(counts["data"])
    counts = {name: n * oversample.get(name, 1) for name, n in counts.items()}
    total = sum(counts[s.name] for s in chosen)
    jobs = []
    for spec in chosen:
        n = counts[spec.name]
        n_files = min(files_per_sample or spec.n_files, n)
        if spec.name in oversample:  # about a million events a file, for parallel processing
            n_files = max(n_files, -(-n // 1_000_000))
        jobs.append((spec, SAMPLES.index(spec), n, n_files, seed, out_dir))
    formats = [format_name] * len(jobs)
    start = time.perf_counter()
    if workers > 1:  # one process per sample; the seeded blocks make the files identical to a serial run
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            written = list(pool.map(_write_sample_quietly, [(*job, f, mismodelling)
                                                            for job, f in zip(jobs, formats, strict=True)]))
    else:
        with progress_bar("generating", total, enabled=show_progress) as advance:
            written = [_write_sample(*job, advance, format_name, mismodelling) for job in jobs]
    if mismodelling.any:
        log.info("data made with a detector that differs from the simulation: %s", mismodelling)
    manifest = {spec.name: _manifest_entry(ntuple, spec, paths, n, sum_weights, luminosity)
                for (spec, _, n, _, _, _), (paths, sum_weights) in zip(jobs, written, strict=True)}
    elapsed = time.perf_counter() - start
    log.info("generated %d events in %.1f s (%.0f events/s) into %s", total, elapsed, total / elapsed, out_dir)
    return save_manifest(manifest, out_dir / "datasets.json")


def _manifest_entry(ntuple: NtupleWriter, spec: SampleSpec, paths: list[str], n_events: int, sum_weights: float,
                    luminosity_pb: float) -> dict:
    metadata = {"is_data": spec.is_data, "kind": spec.kind, "role": spec.role, "year": "run2", "luminosity_pb": luminosity_pb,
                "n_events": n_events}
    if ntuple.format != DEFAULT_FORMAT:
        metadata["format"] = ntuple.format
    if not spec.is_data:
        metadata.update({"xsec_pb": spec.xsec_pb, "sum_weights": sum_weights, "dsid": ntuple.dsid(spec)})
    tree = ntuple.profile().branches.tree
    return {"files": {p: tree for p in paths}, "metadata": metadata}
