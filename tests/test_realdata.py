"""Real ATLAS files (../shared/realdata, beside the checkout): the 2025 Open Data release and DAOD_PHYSLITE.

Each test reads the files twice: through ``tth-adv manifest`` / ``tth-adv run`` (or the processor's
own steps), and independently with plain uproot and awkward, writing out each decision the way the
format's documentation states it.  Skipped, with the reason said, where the folder is absent (the
synthetic-format tests carry the suite there); where it is present every file must open, so a
damaged copy fails rather than skips.  Never copy these files into the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from processors.tth import WEIGHT_QUANTUM, ChunkInfo, TthProcessor
from ttH_adv.app.cli import main
from ttH_adv.inputs import objects as obj
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.output import load_output

REALDATA = Path(os.environ.get("TTH_ADV_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata"))
ODEO = REALDATA / "odeo2025"
PHYSLITE = REALDATA / "physlite"
pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"no real files at {REALDATA} (the real-file tests "
                                "need ../shared/realdata beside the checkout, or TTH_ADV_REALDATA)")

LUMINOSITY_PB = 36_100.0
ODEO_ROLES = ["--role", "301333=continuum", "--role", "410081=continuum"]  # not GamGam samples
PHYSLITE_XSECS = {410470: 396.87, 700322: 2221.2, 601229: 729.77}  # any positive values: they scale, nothing more
PHYSLITE_ARGS = [a for dsid, xsec in PHYSLITE_XSECS.items() for a in ("--role", f"{dsid}=continuum", "--xsec",
                                                                       f"{dsid}={xsec}")]
SCALE_FACTORS_2025 = ["ScaleFactor_PILEUP", "ScaleFactor_PHOTON", "ScaleFactor_ELE", "ScaleFactor_MUON",
                      "ScaleFactor_FTAG", "ScaleFactor_JVT"]


def test_every_real_file_opens_and_holds_its_tree():
    """Present but damaged is a failure, not a skip: each format's folder has files, each opens with its tree."""
    trees = {ODEO: "analysis", PHYSLITE: "CollectionTree"}
    for folder, tree in trees.items():
        files = sorted(folder.rglob("*.root"))
        assert files, f"{folder} holds no ROOT file"
        for path in files:
            with uproot.open(path) as f:
                assert f[tree].num_entries > 0, f"{path}: tree {tree} is empty"


def count(mask: ak.Array) -> int:
    return int(ak.sum(mask))


def build_manifest(tmp_path: Path, folder: Path, *extra: str) -> Path:
    out = tmp_path / "datasets.json"
    assert main(["manifest", str(folder), "--luminosity-pb", str(LUMINOSITY_PB), "--out", str(out), *extra]) == 0
    return out


def run(tmp_path: Path, manifest: Path, executor: str) -> dict:
    out = tmp_path / f"{executor}.zip"
    args = ["--no-progress", "run", "--datasets", str(manifest), "--out", str(out), "--executor", executor]
    assert main([*args, "--workers", "2"] if executor != "iterative" else args) == 0
    return load_output(out)


# ------------------------------------------------------------------ independent selections

def photon_counts(pt, eta, tight_isolated, config) -> dict[str, int]:
    photons = config.photons
    abs_eta = abs(eta)
    accepted = (pt > photons.pt_min) & (abs_eta < photons.abs_eta_max) & ~(
        (abs_eta > photons.crack[0]) & (abs_eta < photons.crack[1]))
    return {"photons": count(ak.num(pt)), "photons_accepted": count(accepted),
            "photons_tight_isolated": count(accepted & tight_isolated)}


def jet_counts(pt, eta, pileup_ok, btagged, config) -> dict[str, int]:
    selected = (pt > config.jets.pt_min) & (abs(eta) < config.jets.abs_eta_max) & pileup_ok
    return {"jets": count(ak.num(pt)), "jets_selected": count(selected), "jets_btagged": count(selected & btagged)}


def lepton_kinematics(pt, eta, is_electron, config) -> ak.Array:
    cuts = config.leptons
    return ((is_electron & (pt > cuts.electron_pt_min) & (abs(eta) < cuts.electron_abs_eta_max))
            | (~is_electron & (pt > cuts.muon_pt_min) & (abs(eta) < cuts.muon_abs_eta_max)))


def odeo_expected(path: Path, config) -> dict[str, int]:
    """The 2025 release's decisions (its notebooks and cheat sheet), from the files' own branches in GeV."""
    a = uproot.open(path)["analysis"].arrays(library="ak")
    counts = photon_counts(a.photon_pt, a.photon_eta, a.photon_isTightID & (a.photon_ptcone20 / a.photon_pt < 0.055),
                           config)
    counts |= jet_counts(a.jet_pt, a.jet_eta, a.jet_jvt, a.jet_btag_quantile >= 4, config)
    leptons = lepton_kinematics(a.lep_pt, a.lep_eta, a.lep_type == 11, config) & a.lep_isTightID & a.lep_isTightIso
    return counts | {"leptons": count(ak.num(a.lep_pt)), "leptons_selected": count(leptons)}


def physlite_expected(path: Path, config) -> dict[str, int]:
    """PHYSLITE decisions as the README states them, from the aux branches (MeV -> GeV)."""
    tree = uproot.open(path)["CollectionTree"]
    r21 = "BTagging_AntiKt4EMPFlow_201903AuxDyn.DL1r_pb" in tree

    def read(collection: str, *fields: str) -> ak.Array:
        return tree.arrays([f"Analysis{collection}AuxDyn.{f}" for f in fields], how=tuple)

    pt, eta, tight, ptcone, etcone = read("Photons", "pt", "eta", "DFCommonPhotonsIsEMTight", "ptcone20",
                                          "topoetcone20")
    counts = photon_counts(pt / 1000, eta, (tight != 0) & (etcone / pt < 0.065) & (ptcone / pt < 0.05), config)
    container, tagger, cut = ("BTagging_AntiKt4EMPFlow_201903", "DL1r", 2.195) if r21 else \
        ("BTagging_AntiKt4EMPFlow", "DL1dv01", 2.456)
    pb, pc, pu = (tree[f"{container}AuxDyn.{tagger}_{p}"].array() for p in ("pb", "pc", "pu"))
    link = tree["AnalysisJetsAuxDyn.btaggingLink/AnalysisJetsAuxDyn.btaggingLink.m_persIndex"].array()
    pb, pc, pu = pb[link], pc[link], pu[link]
    discriminant = np.log(pb / (0.018 * pc + 0.982 * pu))
    if r21:
        jpt, jeta, jvt = read("Jets", "pt", "eta", "Jvt")
        pileup_ok = (jvt > 0.5) | (jpt / 1000 >= 60) | (abs(jeta) >= 2.4)
    else:
        jpt, jeta, jvt = read("Jets", "pt", "eta", "NNJvtPass")
        pileup_ok = jvt != 0
    counts |= jet_counts(jpt / 1000, jeta, pileup_ok, discriminant > cut, config)
    cone = "ptvarcone30_TightTTVA_pt1000" if r21 else "ptvarcone30_Nonprompt_All_MaxWeightTTVALooseCone_pt1000"
    ept, eeta, etight, econe = read("Electrons", "pt", "eta", "DFCommonElectronsLHTight", cone)
    cone = "ptvarcone30_TightTTVA_pt1000" if r21 else "ptvarcone30_Nonprompt_All_MaxWeightTTVA_pt1000"
    mpt, meta, quality, mcone = read("Muons", "pt", "eta", "quality", cone)
    electrons = lepton_kinematics(ept / 1000, eeta, True, config) & (etight != 0) & (econe / ept < 0.06)
    muons = lepton_kinematics(mpt / 1000, meta, False, config) & ((quality & 7) == 0) & (mcone / mpt < 0.06)
    return counts | {"leptons": count(ak.num(ept)) + count(ak.num(mpt)),
                     "leptons_selected": count(electrons) + count(muons)}


def dataset_events(manifest_path: Path, name: str, config):
    """(events, chunk info) of a one-file dataset, read as the Runner reads them."""
    dataset = load_manifest(manifest_path).datasets[name]
    (path,) = dataset.files
    fmt = config.format(dataset.format)
    events = obj.open_events(path, fmt, {**dataset.metadata(), "dataset": name})
    return events, ChunkInfo.from_metadata(events.metadata, config), path


# ------------------------------------------------------------------ the 2025 release

@pytest.fixture(scope="module")
def odeo_manifest(tmp_path_factory):
    return build_manifest(tmp_path_factory.mktemp("odeo"), ODEO, *ODEO_ROLES)


def test_odeo_manifest_needs_roles_for_dsids_outside_the_gamgam_catalogue(tmp_path, caplog):
    assert main(["manifest", str(ODEO), "--luminosity-pb", "36100", "--out", str(tmp_path / "m.json")]) == 2
    assert "not in the opendata2025 DSID catalogue: 301333" in caplog.text  # every unknown DSID in one error
    assert "--role 301333=ROLE --role 410081=ROLE" in caplog.text


def test_odeo_manifest_reads_normalisation_from_the_files(odeo_manifest):
    datasets = json.loads(odeo_manifest.read_text())
    by_dsid = {m["metadata"].get("dsid"): m for m in datasets.values()}
    for path in ODEO.glob("*_mc_*.root"):
        a = uproot.open(path)["analysis"].arrays(["xsec", "kfac", "filteff", "sum_of_weights"], entry_stop=1,
                                                  library="np")
        meta = by_dsid[int(path.name.split("_mc_")[1].split(".")[0])]["metadata"]
        assert meta["format"] == "opendata2025" and meta["role"] == "continuum"
        assert meta["xsec_pb"] == pytest.approx(float(a["xsec"][0] * a["kfac"][0] * a["filteff"][0]), rel=1e-12)
        assert meta["sum_weights"] == float(a["sum_of_weights"][0])
    data = datasets["data"]
    assert data["metadata"]["is_data"] and len(data["files"]) == 1 and data["metadata"]["n_events"] == 3424


def test_odeo_run_reads_every_event_and_counts_objects_as_uproot_does_on_two_executors(odeo_manifest, tmp_path,
                                                                                      config):
    outputs = {executor: run(tmp_path, odeo_manifest, executor) for executor in ("iterative", "futures")}
    for output in outputs.values():
        meta = output["metadata"]
        for name, dataset in load_manifest(odeo_manifest).datasets.items():
            (path,) = dataset.files
            assert meta["events_read"][name] == uproot.open(path)["analysis"].num_entries
            assert output["cutflow"][name]["all"]["events"] == meta["events_read"][name]
            assert meta["objects"][name] == odeo_expected(Path(path), config), name
    first, second = outputs.values()
    assert first["cutflow"] == second["cutflow"]
    for key, h in first["histograms"].items():
        assert np.array_equal(h.values(flow=True), second["histograms"][key].values(flow=True)), key


def test_odeo_event_weights_follow_the_release_formula(odeo_manifest, config):
    proc = TthProcessor(config)
    for name in load_manifest(odeo_manifest).datasets:
        events, info, path = dataset_events(odeo_manifest, name, config)
        weights = proc.raw_weights(events, info) * info.norm
        if info.is_data:
            assert np.all(weights == 1.0)
            continue
        a = uproot.open(path)["analysis"].arrays(["mcWeight", "xsec", "kfac", "filteff", "sum_of_weights",
                                                  *SCALE_FACTORS_2025], library="np")
        expected = LUMINOSITY_PB * a["xsec"] * a["kfac"] * a["filteff"] * a["mcWeight"].astype(np.float64) \
            / a["sum_of_weights"]
        for sf in SCALE_FACTORS_2025:
            expected = expected * a[sf]
        assert len(weights) == len(expected)
        # the processor rounds raw weights to multiples of WEIGHT_QUANTUM (exact sums, processors.tth)
        np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=WEIGHT_QUANTUM * info.norm)
        assert not np.allclose(expected, expected[0])  # the scale factors vary per event: a real check
        # a skim holds part of a DSID's events: the sum is not sigma x L
        assert weights.sum() < 0.5 * LUMINOSITY_PB * info.norm * a["sum_of_weights"][0]


def test_odeo_objects_come_out_in_gev(odeo_manifest, config):
    events, info, path = dataset_events(odeo_manifest, "data", config)
    objs = TthProcessor(config).build_objects(events, info)
    raw = uproot.open(path)["analysis"].arrays(["photon_pt", "jet_pt", "met"], library="ak")
    assert objs.photons.pt.min() >= 25.0 and objs.photons.pt.max() < 6500  # the skim's 25 GeV photon threshold
    np.testing.assert_array_equal(objs.jets.pt, ak.to_numpy(ak.flatten(raw.jet_pt)))  # GeV already: unscaled
    np.testing.assert_allclose(objs.met, ak.to_numpy(raw.met), rtol=1e-6)


# ------------------------------------------------------------------ DAOD_PHYSLITE

@pytest.fixture(scope="module")
def physlite_manifest(tmp_path_factory):
    return build_manifest(tmp_path_factory.mktemp("physlite"), PHYSLITE, *PHYSLITE_ARGS)


def test_physlite_manifest_takes_dsids_and_weights_from_eventinfo(physlite_manifest):
    datasets = load_manifest(physlite_manifest).datasets
    assert {d.dsid: d.format for d in datasets.values()} == {410470: "physlite_r21", 700322: "physlite",
                                                             601229: "physlite"}
    for d in datasets.values():
        (path,) = d.files
        weights = uproot.open(path)["CollectionTree"]["EventInfoAuxDyn.mcEventWeights"].array()
        assert d.sum_weights == pytest.approx(float(np.sum(ak.to_numpy(weights[:, 0]), dtype=np.float64)),
                                              rel=1e-12)
        assert d.xsec_pb == PHYSLITE_XSECS[d.dsid] and d.role == "continuum"


def test_physlite_manifest_without_a_cross_section_names_the_dsid_and_option(tmp_path, caplog):
    args = ["manifest", str(PHYSLITE), "--luminosity-pb", "36100", "--out", str(tmp_path / "m.json"),
            *(a for dsid in PHYSLITE_XSECS for a in ("--role", f"{dsid}=continuum")), "--xsec", "410470=396.87"]
    assert main(args) == 2
    assert "--xsec 601229=PB --xsec 700322=PB" in caplog.text
    assert not (tmp_path / "m.json").exists()


def test_physlite_run_counts_selected_objects_as_uproot_does(physlite_manifest, tmp_path, config):
    output = run(tmp_path, physlite_manifest, "iterative")
    for name, dataset in load_manifest(physlite_manifest).datasets.items():
        (path,) = dataset.files
        assert output["metadata"]["events_read"][name] == uproot.open(path)["CollectionTree"].num_entries
        assert output["metadata"]["objects"][name] == physlite_expected(Path(path), config), name


def test_physlite_weights_objects_and_units(physlite_manifest, config):
    proc = TthProcessor(config)
    for name in load_manifest(physlite_manifest).datasets:
        events, info, path = dataset_events(physlite_manifest, name, config)
        tree = uproot.open(path)["CollectionTree"]
        nominal = ak.to_numpy(tree["EventInfoAuxDyn.mcEventWeights"].array()[:, 0]).astype(np.float64)
        expected = LUMINOSITY_PB * PHYSLITE_XSECS[info_dsid(physlite_manifest, name)] * nominal / nominal.sum()
        np.testing.assert_allclose(proc.raw_weights(events, info) * info.norm, expected, rtol=1e-6)
        objs = proc.build_objects(events, info)
        raw_pt = ak.flatten(tree["AnalysisPhotonsAuxDyn.pt"].array())
        np.testing.assert_allclose(np.sort(objs.photons.pt), np.sort(ak.to_numpy(raw_pt)) / 1000, rtol=1e-6)
        number = tree.arrays(filter_name="EventInfoAux*eventNumber", library="np")
        np.testing.assert_array_equal(objs.event_number, next(iter(number.values())).astype(np.int64))


def info_dsid(manifest_path: Path, name: str) -> int:
    return load_manifest(manifest_path).datasets[name].dsid


# ------------------------------------------------------------------ the wrong profile

@pytest.mark.parametrize("folder, wrong, tree, missing", [
    (ODEO, "opendata2020", None, "has no tree 'mini' (its trees: analysis)"),
    (ODEO, "opendata2020", "analysis", "tree 'analysis' lacks branch(es): photon_E, photon_ptcone30, photon_etcone20"),
    (PHYSLITE, "opendata2025", None, "has no tree 'analysis' (its trees: ##Links, ##Params, ##Shapes, CollectionTree"),
    (PHYSLITE, "opendata2025", "CollectionTree", "lacks branch(es): photon_pt, photon_eta"),
    (ODEO, "physlite", None, "has no tree 'CollectionTree' (its trees: analysis)"),
    (ODEO, "physlite", "analysis", "lacks branch(es): AnalysisPhotonsAuxDyn.pt"),
])
def test_a_file_read_with_another_formats_profile_is_refused_before_any_event(tmp_path, caplog, folder, wrong,
                                                                              tree, missing):
    path = sorted(folder.glob("*.root"))[0]
    manifest = tmp_path / "datasets.json"
    entry = {"files": {str(path): tree}, "metadata": {"is_data": True, "kind": "data", "format": wrong}}
    manifest.write_text(json.dumps({"one": entry}))
    out = tmp_path / "out.zip"
    assert main(["--no-progress", "run", "--datasets", str(manifest), "--out", str(out)]) == 2
    assert str(path) in caplog.text and missing in caplog.text and not out.exists()
    caplog.clear()
    assert main(["manifest", str(path), "--luminosity-pb", "36100", "--format", wrong, "--out",
                 str(tmp_path / "m.json"), *(ODEO_ROLES if folder == ODEO else PHYSLITE_ARGS)]) == 2
    assert path.name in caplog.text and not (tmp_path / "m.json").exists()
