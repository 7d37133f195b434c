"""The generator writes the 2025 release's format; the whole chain runs on it (manifest -> run -> train -> fit)."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import uproot
import yaml

from ttH_adv.app.cli import main
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.ntuple_formats import MV2C10_WORKING_POINTS
from ttH_adv.inputs.opendata import DATA_FILE, MC_FILE
from ttH_adv.output import load_output

from conftest import N_EVENTS, SEED, run

FORMAT_INDEPENDENT_STEPS = ("all", "trigger", "two_photons", "relative_pt", "mass_window")
EXTRA_CATALOGUE = {"samples": {  # the generated DSIDs the 2025 GamGam catalogue does not know
    346188: {"name": "tH", "role": "resonant", "process": "tHjb125_gamgam"},
    364352: {"name": "yyjets", "role": "continuum", "process": "yy_jets_continuum"},
    345868: {"name": "ttyy", "role": "continuum", "process": "ttbar_yy_continuum"},
    361042: {"name": "yjets", "role": "reducible", "process": "y_jets_reducible"}}}


@pytest.fixture(scope="module")
def generated_2025(tmp_path_factory):
    """The conftest's 60k events (same seed) written in the 2025 release's format."""
    out = tmp_path_factory.mktemp("odeo")
    return out, json.loads(generate_dataset(out, N_EVENTS, SEED, format_name="opendata2025").read_text())


def test_generated_files_are_laid_out_as_the_release(generated_2025):
    folder, manifest = generated_2025
    assert manifest["ttH"]["metadata"]["dsid"] == 346525 and manifest["VBF"]["metadata"]["dsid"] == 346214
    for name, entry in manifest.items():
        assert entry["metadata"]["format"] == "opendata2025"
        for rel in entry["files"]:
            file_name = rel.rsplit("/", 1)[-1]
            assert file_name.startswith("ODEO_FEB2025_v0_GamGam_") and file_name.endswith(".root")
            if name == "data":
                assert DATA_FILE.search(file_name) and not MC_FILE.search(file_name)
            else:
                assert int(MC_FILE.search(file_name).group(1)) == entry["metadata"]["dsid"]
    with uproot.open(folder / next(iter(manifest["ttH"]["files"]))) as f:
        assert f.keys(cycle=False) == ["analysis"]
        tree = f["analysis"]
        types = {k: tree[k].typename for k in ("photon_pt", "photon_isTightIso", "jet_btag_quantile", "jet_jvt",
                                               "eventNumber", "xsec", "sum_of_weights", "mcWeight")}
        assert types == {"photon_pt": "float[]", "photon_isTightIso": "bool[]", "jet_btag_quantile": "int32_t[]",
                         "jet_jvt": "bool[]", "eventNumber": "uint64_t", "xsec": "double", "sum_of_weights": "double",
                         "mcWeight": "float"}
        a = tree.arrays(["photon_pt", "jet_btag_quantile", "kfac", "filteff", "num_events"], library="np")
        pt = np.concatenate(a["photon_pt"])
        assert pt.min() > 5.0 and pt.max() < 5000.0  # GeV
        assert set(np.unique(np.concatenate(a["jet_btag_quantile"]))) == {1, 2, 3, 4, 5}
        assert np.all(a["kfac"] == 1.0) and np.all(a["filteff"] == 1.0)
        assert np.all(a["num_events"] == manifest["ttH"]["metadata"]["n_events"])
    with uproot.open(folder / next(iter(manifest["data"]["files"]))) as f:  # the release's data conventions
        d = f["analysis"].arrays(["xsec", "sum_of_weights", "mcWeight", "ScaleFactor_PILEUP"], library="np")
        assert d["xsec"].dtype == np.float32 and np.all(d["xsec"] == 0) and np.all(d["sum_of_weights"] == 1)
        assert np.all(d["mcWeight"] == 1) and np.all(d["ScaleFactor_PILEUP"] == 1)


def test_btag_quantile_bins_the_2020_score_at_the_mv2c10_working_points(generated_2025, dataset_dir):
    folder, manifest = generated_2025
    rel_2025 = next(iter(manifest["ttH"]["files"]))
    rel_2020 = next(iter(json.loads((dataset_dir / "datasets.json").read_text())["ttH"]["files"]))
    quantile = np.concatenate(uproot.open(folder / rel_2025)["analysis"]["jet_btag_quantile"].array(library="np"))
    score = np.concatenate(uproot.open(dataset_dir / rel_2020)["mini"]["jet_MV2c10"].array(library="np"))
    np.testing.assert_array_equal(quantile, 1 + np.searchsorted(np.asarray(MV2C10_WORKING_POINTS), score))


def test_scale_factors_are_the_2020_ones_under_the_release_names(generated_2025, dataset_dir):
    folder, manifest = generated_2025
    rel_2025 = next(iter(manifest["ttH"]["files"]))
    rel_2020 = next(iter(json.loads((dataset_dir / "datasets.json").read_text())["ttH"]["files"]))
    new = uproot.open(folder / rel_2025)["analysis"].arrays(library="np", filter_name="ScaleFactor_*")
    old = uproot.open(dataset_dir / rel_2020)["mini"].arrays(library="np", filter_name="scaleFactor_*")
    for name_2025, name_2020 in {"PILEUP": "PILEUP", "PHOTON": "PHOTON", "ELE": "ELE", "MUON": "MUON",
                                 "FTAG": "BTAG", "BTAG": "BTAG", "LepTRIGGER": "LepTRIGGER"}.items():
        np.testing.assert_array_equal(new[f"ScaleFactor_{name_2025}"], old[f"scaleFactor_{name_2020}"])
    assert np.all(new["ScaleFactor_JVT"] == 1) and np.std(old["scaleFactor_BTAG"]) > 0.01


def test_manifest_run_train_fit_on_the_2025_format(generated_2025, manifest, config, tmp_path, caplog):
    folder, generated = generated_2025
    caplog.set_level(logging.INFO)
    lumi = generated["ttH"]["metadata"]["luminosity_pb"]
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(yaml.safe_dump(EXTRA_CATALOGUE))
    built = tmp_path / "built.json"
    args = ["manifest", str(folder), "--out", str(built), "--luminosity-pb", str(lumi)]
    assert main(args) == 2 and "--role 3" in caplog.text  # tH and the continuum and reducible MC are not in the release
    assert main([*args, "--catalogue", str(catalogue)]) == 0
    assert "input format opendata2025, detected" in caplog.text
    raw = json.loads(built.read_text())
    assert raw.keys() == generated.keys()
    for name, entry in raw.items():  # cross-sections and sums of weights read from the files
        meta, truth = entry["metadata"], generated[name]["metadata"]
        assert (meta["role"], meta["format"], meta["n_events"]) == (truth["role"], "opendata2025", truth["n_events"])
        if name != "data":
            assert meta["dsid"] == truth["dsid"]
            assert meta["xsec_pb"] == pytest.approx(truth["xsec_pb"], rel=1e-12)
            assert meta["sum_weights"] == pytest.approx(truth["sum_weights"], rel=1e-12)
    out = tmp_path / "hist"
    assert main(["--no-progress", "run", "--datasets", str(built), "--out", str(out), "--dump-features",
                 str(tmp_path / "dump"), "--executor", "futures"]) == 0
    output = load_output(out / "output.zip")
    same_events_2020 = run(manifest, config)  # the conftest's files: the same events in the 2020 layout
    for name in generated:  # the photon kinematics, trigger and mass window do not depend on the format
        for step in FORMAT_INDEPENDENT_STEPS:
            assert output["cutflow"][name][step]["events"] == same_events_2020["cutflow"][name][step]["events"]
        # the 2025 profile isolates photons by ptcone20/pT < 0.055 and b-tags at quantile >= 4 (the release's
        # recommendations), not by the 2020 cones and score: those two counts differ by design
        counts, counts_2020 = output["metadata"]["objects"][name], same_events_2020["metadata"]["objects"][name]
        for key in ("photons", "photons_accepted", "jets", "jets_selected", "leptons", "leptons_selected"):
            assert counts[key] == counts_2020[key], (name, key)
    tth = load_manifest(built).datasets["ttH"]
    assert output["cutflow"]["ttH"]["all"]["weighted"] == pytest.approx(
        sum_of_weights_times_sf(tth.files, config) * tth.norm, rel=1e-6)
    assert main(["train", "--features", str(tmp_path / "dump"), "--out", str(tmp_path / "model"), "--method",
                 "classifier", "--epochs", "1", "--layers", "8"]) == 0
    assert json.loads((tmp_path / "model" / "results.json").read_text())["n_signal"] > 100
    assert main(["fit", "--histograms", str(out), "--out", str(tmp_path / "fits")]) == 0
    fits = json.loads((tmp_path / "fits" / "fits.json").read_text())
    assert fits["conventions"]["datasets_by_role"]["signal"] == ["ttH"]
    assert fits["categories"][0]["expected_signal"] > 0
    compare = ["--no-progress", "compare", "--datasets", str(built), "--models", str(tmp_path / "model"), "--out",
               str(tmp_path / "compare"), "--had", "1", "--lep", "1", "--min-sideband", "1"]
    assert main(compare) == 2 and "pt_syst" in caplog.text  # every variation by default: these files have no shifts
    assert not (tmp_path / "compare").exists()  # said before the scoring pass, not after it
    assert main([*compare, "--systematics", "weights"]) == 0  # ... so the weight variations, as the error says
    table = json.loads((tmp_path / "compare" / "comparison.json").read_text())["table"]
    assert [row["method"] for row in table] == ["classifier"] and table[0]["z"]["mean"] > 0


def sum_of_weights_times_sf(files: dict, config) -> float:
    """Sum over the files of mcWeight x the 2025 profile's scale factors, from plain uproot."""
    names = ["mcWeight", *config.format("opendata2025").scale_factors]
    assert all(re.fullmatch(r"mcWeight|ScaleFactor_\w+", n) for n in names)
    total = 0.0
    for path in files:
        a = uproot.open(path)["analysis"].arrays(names, library="np")
        total += float(np.sum(np.prod([a[n].astype(np.float64) for n in names], axis=0)))
    return total


@pytest.mark.parametrize("command", [["generate", "--events", "100"], ["demo", "--quick"]])
def test_an_unknown_generator_format_is_refused_before_anything_is_written(command, tmp_path, caplog):
    out = tmp_path / "out"
    assert main([*command, "--out", str(out), "--format", "opendata2099"]) == 2
    assert "opendata2099" in caplog.text and "--format" in caplog.text and not out.exists()
