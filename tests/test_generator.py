"""The synthetic ntuple generator: format, reproducibility, normalisation and physics."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from ttH_adv.event import selections as sel
from ttH_adv.event.columns import delta_phi
from ttH_adv.inputs import objects
from ttH_adv.inputs.generator import events_per_sample, generate_dataset
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.samples import DATA_SKIM_XSEC_PB, SAMPLES_BY_NAME

from conftest import read_events

OPEN_DATA_TYPES = {
    "photon_pt": "float[]", "photon_eta": "float[]", "photon_E": "float[]", "photon_isTightID": "bool[]",
    "photon_ptcone30": "float[]", "photon_etcone20": "float[]", "photon_pt_syst": "float[]",
    "jet_pt": "float[]", "jet_MV2c10": "float[]", "jet_jvt": "float[]", "jet_pt_syst": "float[]",
    "lep_pt": "float[]", "lep_charge": "int32_t[]", "lep_type": "uint32_t[]", "lep_isTightID": "bool[]",
    "lep_pt_syst": "float[]", "met_et": "float", "met_phi": "float", "met_et_syst": "float",
    "mcWeight": "float", "XSection": "float", "SumWeights": "float", "scaleFactor_PHOTON": "float",
    "scaleFactor_PILEUP": "float", "trigP": "bool", "runNumber": "int32_t", "eventNumber": "int32_t",
    "channelNumber": "int32_t", "photon_n": "int32_t", "jet_n": "int32_t", "lep_n": "int32_t",
}


def _concat_sample(manifest, name, branches):
    files = manifest.datasets[name].files
    return uproot.concatenate(files, branches, library="ak")


def test_branch_names_types_and_mev_units(manifest):
    path, tree = next(iter(manifest.datasets["ttH"].files.items()))
    with uproot.open(path) as f:
        t = f[tree]
        assert t.name == "mini"
        for branch, typename in OPEN_DATA_TYPES.items():
            assert t[branch].typename == typename, branch
        arrays = t.arrays(["photon_n", "photon_pt", "jet_pt", "met_et"])
    # Energies are MeV: photons of a 125 GeV diphoton carry tens of GeV.
    lead_pt = ak.firsts(arrays.photon_pt)
    assert 30_000 < np.nanmedian(ak.to_numpy(ak.fill_none(lead_pt, np.nan))) < 200_000
    assert ak.all(ak.num(arrays.photon_pt) == arrays.photon_n)
    assert ak.all(arrays.jet_pt > 20_000)  # jets written above 20 GeV


def test_same_seed_same_events_regardless_of_file_count(tmp_path):
    a = generate_dataset(tmp_path / "a", 3000, seed=3, samples=["ttH", "data"])
    b = generate_dataset(tmp_path / "b", 3000, seed=3, samples=["ttH", "data"], files_per_sample=1)
    c = generate_dataset(tmp_path / "c", 3000, seed=4, samples=["ttH"])
    ma, mb, mc = load_manifest(a), load_manifest(b), load_manifest(c)
    assert len(ma.datasets["ttH"].files) == 3 and len(mb.datasets["ttH"].files) == 1
    for name in ("ttH", "data"):
        xa = _concat_sample(ma, name, ["photon_pt", "jet_MV2c10", "mcWeight", "eventNumber"])
        xb = _concat_sample(mb, name, ["photon_pt", "jet_MV2c10", "mcWeight", "eventNumber"])
        assert ak.all(ak.flatten(xa.photon_pt) == ak.flatten(xb.photon_pt))
        assert ak.all(ak.flatten(xa.jet_MV2c10) == ak.flatten(xb.jet_MV2c10))
        assert ak.all(xa.eventNumber == xb.eventNumber)
    assert ma.datasets["ttH"].sum_weights == mb.datasets["ttH"].sum_weights
    xc = _concat_sample(mc, "ttH", ["photon_pt"])
    assert not ak.all(ak.flatten(xc.photon_pt)[:100] == ak.flatten(xa.photon_pt)[:100])


def test_event_counts_follow_sample_shares(manifest):
    counts = events_per_sample(60_000)
    for name, info in manifest.datasets.items():
        assert info.n_events == counts[name]
        assert sum(uproot.open({f: t}).num_entries for f, t in info.files.items()) == counts[name]
        numbers = _concat_sample(manifest, name, ["eventNumber"]).eventNumber
        assert len(np.unique(ak.to_numpy(numbers))) == len(numbers)  # unique within a sample


@pytest.mark.parametrize("name", ["ttH", "ggH", "yyjets", "ttyy"])
def test_normalisation_is_xsec_times_luminosity(manifest, name):
    info = manifest.datasets[name]
    x = _concat_sample(manifest, name, ["mcWeight", "XSection", "SumWeights"])
    w = ak.to_numpy(x.mcWeight).astype(np.float64)
    assert np.all(ak.to_numpy(x.XSection) == np.float32(SAMPLES_BY_NAME[name].xsec_pb))
    assert np.allclose(ak.to_numpy(x.SumWeights), info.sum_weights, rtol=1e-6)
    total = np.sum(w * info.norm)
    assert total == pytest.approx(SAMPLES_BY_NAME[name].xsec_pb * info.luminosity_pb, rel=1e-9)
    # MC is normalised to the luminosity the generated data stand for.
    assert info.luminosity_pb == pytest.approx(manifest.datasets["data"].n_events / DATA_SKIM_XSEC_PB)


def test_data_has_no_mc_normalisation(manifest):
    info = manifest.datasets["data"]
    assert info.is_data and info.xsec_pb is None and info.norm == 1.0
    x = _concat_sample(manifest, "data", ["mcWeight", "runNumber"])
    assert np.all(ak.to_numpy(x.mcWeight) == 1.0)
    assert ak.min(x.runNumber) >= 276262 and ak.max(x.runNumber) <= 364292


def _diphoton_events(manifest, name, config):
    events = read_events(manifest, name, config)
    photons = objects.collections(events, config.format())["photons"]
    d = sel.leading_diphoton(photons, config.photons)
    passed = sel.diphoton_passes_relative_pt(d, config.photons) & sel.in_mass_window(d.mass, 105.0, 160.0)
    tight_iso = sel.photon_is_tight_isolated(d.lead, config.format()) & sel.photon_is_tight_isolated(
        d.sublead, config.format())
    return events, d, passed, tight_iso


def test_signal_peaks_at_higgs_mass_with_expected_resolution(manifest, config):
    _, d, passed, ti = _diphoton_events(manifest, "ttH", config)
    mass = d.mass[passed & ti]
    assert mass.size > 3000
    assert abs(np.median(mass) - 125.0) < 1.0
    core = np.percentile(mass, [25, 75])
    sigma = (core[1] - core[0]) / 1.349  # Gaussian-equivalent core width
    assert 1.3 < sigma < 2.1


def test_background_mass_falls_smoothly(manifest, config):
    _, d, passed, _ = _diphoton_events(manifest, "data", config)
    counts, _ = np.histogram(d.mass[passed], bins=11, range=(105, 160))
    assert np.all(np.diff(counts) < 0)
    # An exponential describes it: log-linear fit residuals within Poisson scatter.
    centres = np.arange(11) * 5 + 107.5
    slope, intercept = np.polyfit(centres, np.log(counts), 1, w=np.sqrt(counts))
    assert -0.06 < slope < -0.015
    pull = (counts - np.exp(intercept + slope * centres)) / np.sqrt(counts)
    assert np.sum(pull**2) / 9 < 4.0


def test_background_kinematics_correlate_with_mass(manifest, config):
    """NTNI data after the diphoton selection: Pearson correlations near the reference analysis's table."""
    _, d, passed, ti = _diphoton_events(manifest, "data", config)
    m = passed & ~ti
    lead, sub, mass = d.lead.take(m), d.sublead.take(m), d.mass[m]
    dphi = np.abs(delta_phi(lead.phi, sub.phi))
    deta = np.abs(lead.eta - sub.eta)

    def r(x):
        return np.corrcoef(x, mass)[0, 1]

    # The reference analysis: 0.27, 0.36, 0.28, 0.22, 0.10. The generator reproduces the angular ones
    # closely; its photon-pT correlations are ~0.1 off (docs/processing.md, "Synthetic ntuples").
    assert 0.08 < r(lead.pt) < 0.35
    assert 0.25 < r(sub.pt) < 0.55
    assert 0.20 < r(np.hypot(dphi, deta)) < 0.36
    assert 0.14 < r(dphi) < 0.30
    assert 0.03 < r(deta) < 0.17


def test_ntni_data_is_dominated_by_photons_failing_tight_or_isolation(manifest, config):
    _, d, passed, ti = _diphoton_events(manifest, "data", config)
    frac_ntni = (passed & ~ti).sum() / passed.sum()
    assert 0.25 < frac_ntni < 0.65


def test_signal_and_background_differ_in_jets_leptons_btags(manifest, config):
    def summary(name):
        coll = objects.collections(read_events(manifest, name, config), config.format())
        jets = coll["jets"].select(sel.select_jets(coll["jets"], config.jets, config.format().jvt))
        n_leps = coll["leptons"].count(sel.select_leptons(coll["leptons"], config.leptons, config.format()))
        n_b = jets.count(config.format().btag(jets))
        return jets.counts.mean(), (n_b >= 1).mean(), (n_leps >= 1).mean()

    sig, bkg = summary("ttH"), summary("data")
    assert sig[0] > bkg[0] + 2  # tt decays give many more jets
    assert sig[1] > 0.7 > 0.3 > bkg[1]
    assert sig[2] > 0.3 > 0.1 > bkg[2]


def test_systematic_branches_are_small_positive_shifts(manifest):
    x = _concat_sample(manifest, "ttH", ["photon_pt", "photon_pt_syst", "jet_pt", "jet_pt_syst", "met_et",
                                         "met_et_syst"])
    for obj in ("photon", "jet"):
        rel = ak.flatten(x[f"{obj}_pt_syst"] / x[f"{obj}_pt"])
        assert ak.all(rel > 0) and ak.all(rel < 0.1)
    assert ak.all(x.met_et_syst > 0)


def test_parallel_generation_writes_the_same_events(tmp_path):
    """workers > 1 writes each sample in its own process; the seeded blocks give the same events."""

    serial = load_manifest(generate_dataset(tmp_path / "serial", 6_000, seed=3, samples=["ttH", "data"]))
    parallel = load_manifest(generate_dataset(tmp_path / "parallel", 6_000, seed=3, samples=["ttH", "data"], workers=2))
    assert serial.datasets.keys() == parallel.datasets.keys()
    for name, info in serial.datasets.items():
        other = parallel.datasets[name]
        assert info.norm == other.norm and len(info.files) == len(other.files)
        for a, b in zip(info.files, other.files, strict=True):
            arrays = [uproot.open(p)["mini"].arrays(library="ak") for p in (a, b)]
            assert ak.all(arrays[0].eventNumber == arrays[1].eventNumber)
            assert ak.all(ak.flatten(arrays[0].photon_pt) == ak.flatten(arrays[1].photon_pt))


def test_the_mismodelling_switch_changes_the_data_only_and_by_its_settings(tmp_path):
    """generate --mismodel: the data's jets 3% harder and its photons' etcone20 0.5 GeV larger; the simulation,
    and every other data branch, event for event as without it."""
    from ttH_adv.inputs.generator import DATA_MISMODELLING

    off = load_manifest(generate_dataset(tmp_path / "off", 4000, seed=5, samples=["ttH", "yyjets", "data"]))
    on = load_manifest(generate_dataset(tmp_path / "on", 4000, seed=5, samples=["ttH", "yyjets", "data"],
                                        mismodelling=DATA_MISMODELLING))
    for name in ("ttH", "yyjets"):  # the simulation: byte for byte the same events
        for a, b in zip(off.datasets[name].files, on.datasets[name].files, strict=True):
            x, y = (uproot.open(p)["mini"].arrays(library="ak") for p in (a, b))
            assert x.fields == y.fields and all(ak.all(ak.ravel(x[f]) == ak.ravel(y[f])) for f in x.fields), name
    x, y = (_concat_sample(m, "data", ["eventNumber", "photon_pt", "photon_etcone20", "photon_ptcone30", "jet_pt",
                                       "jet_E", "jet_MV2c10", "met_et"]) for m in (off, on))
    for field in ("eventNumber", "photon_pt", "photon_ptcone30", "met_et"):
        assert ak.all(ak.ravel(x[field]) == ak.ravel(y[field])), field
    shift = ak.ravel(y.photon_etcone20 - x.photon_etcone20).to_numpy()
    assert np.allclose(shift, DATA_MISMODELLING.photon_etcone_shift * 1000, atol=0.01)  # MeV in the files
    lead = ak.num(x.jet_pt) > 0  # the leading jet above 20 GeV stays the leading jet, 3% harder
    ratio = (ak.firsts(y.jet_pt[lead]) / ak.firsts(x.jet_pt[lead])).to_numpy()
    assert np.allclose(ratio, 1 + DATA_MISMODELLING.jet_energy_scale, rtol=1e-6) and ratio.size > 100
    assert ak.all(ak.num(y.jet_pt) >= ak.num(x.jet_pt))  # jets just below 20 GeV cross the threshold
    assert ak.sum(ak.num(y.jet_pt)) > ak.sum(ak.num(x.jet_pt))
