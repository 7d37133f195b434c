"""ATLAS Open Data layout: `tth-adv manifest` builds the manifest, roles travel, any dataset names work."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import uproot

from ttH_adv.app.cli import main
from ttH_adv.errors import ManifestError
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.opendata import build_manifest
from ttH_adv.inputs.samples import SAMPLES, SAMPLES_BY_NAME, load_catalogue
from ttH_adv.output import load_output


@pytest.fixture(scope="module")
def opendata(dataset_dir, tmp_path_factory):
    """The generated 60k-event files copied under the release's names (several files for some DSIDs)."""
    out = tmp_path_factory.mktemp("opendata") / "GamGam"
    (out / "Data").mkdir(parents=True)
    (out / "MC").mkdir()
    generated = json.loads((dataset_dir / "datasets.json").read_text())
    for name, entry in generated.items():
        for i, f in enumerate(entry["files"]):
            spec = SAMPLES_BY_NAME[name]
            dst = (out / "Data" / f"data_{'ABCD'[i]}.GamGam.root" if spec.is_data else
                   out / "MC" / f"mc_{spec.dsid}.{load_catalogue()[spec.dsid].process}.GamGam.{i}.root")
            shutil.copy(dataset_dir / f, dst)
    return out, generated


def test_catalogue_knows_every_generated_sample():
    catalogue = load_catalogue()
    for spec in SAMPLES:
        if not spec.is_data:
            assert (catalogue[spec.dsid].name, catalogue[spec.dsid].role) == (spec.name, spec.role)


def test_manifest_from_the_release_layout_then_run_train_fit_with_renamed_datasets(opendata, dataset_dir, tmp_path,
                                                                                  capsys):
    folder, generated = opendata
    lumi = generated["ttH"]["metadata"]["luminosity_pb"]
    built = tmp_path / "built.json"
    assert main(["manifest", str(folder), "--out", str(built), "--luminosity-pb", str(lumi)]) == 0
    table = capsys.readouterr().out
    assert "ttH         signal" in table and "ggH         resonant" in table and "data        data" in table
    raw = json.loads(built.read_text())
    assert raw.keys() == generated.keys() and len(raw["data"]["files"]) == len(generated["data"]["files"])
    for name, entry in raw.items():  # cross-sections and sums of weights read from the files
        meta, truth = entry["metadata"], generated[name]["metadata"]
        assert meta["role"] == SAMPLES_BY_NAME[name].role
        if name != "data":
            assert meta["xsec_pb"] == pytest.approx(truth["xsec_pb"], rel=1e-6)
            assert meta["sum_weights"] == pytest.approx(truth["sum_weights"], rel=1e-6)
    # Any names: the roles, not the names, tell every stage what a dataset is.
    renamed = {f"sample_{i}": entry for i, entry in enumerate(raw.values())}
    manifest_path = tmp_path / "renamed.json"
    manifest_path.write_text(json.dumps(renamed))
    new_name = {old: f"sample_{i}" for i, old in enumerate(raw)}
    assert main(["--no-progress", "run", "--datasets", str(manifest_path), "--out", str(tmp_path / "hist"),
                 "--dump-features", str(tmp_path / "dump"), "--executor", "futures"]) == 0
    output = load_output(tmp_path / "hist" / "output.zip")
    manifest = load_manifest(manifest_path)
    data = manifest.datasets[new_name["data"]]
    entries = sum(uproot.open(f)["mini"].num_entries for f in data.files)
    assert output["cutflow"][new_name["data"]]["all"]["events"] == entries == generated["data"]["metadata"]["n_events"]
    tth = manifest.datasets[new_name["ttH"]]
    mc_weights = sum(np.sum(uproot.open(f)["mini"]["mcWeight"].array(library="np").astype(np.float64))
                     for f in tth.files)
    assert mc_weights * tth.norm == pytest.approx(tth.xsec_pb * lumi, rel=1e-6)  # ttH normalised to sigma x L
    assert output["metadata"]["roles"][new_name["ttH"]] == "signal"
    assert main(["train", "--features", str(tmp_path / "dump"), "--out", str(tmp_path / "model"), "--method",
                 "classifier", "--epochs", "1", "--layers", "8"]) == 0
    samples = json.loads((tmp_path / "model" / "results.json").read_text())["n_signal"]
    assert samples > 100
    assert main(["fit", "--histograms", str(tmp_path / "hist"), "--out", str(tmp_path / "fits")]) == 0
    fits = json.loads((tmp_path / "fits" / "fits.json").read_text())
    assert fits["conventions"]["datasets_by_role"]["signal"] == [new_name["ttH"]]
    assert fits["categories"][0]["expected_signal"] > 0


def test_unknown_dsid_is_named_and_a_role_makes_it_known(opendata, tmp_path, config):
    folder, generated = opendata
    src = next((folder / "MC").glob("mc_341081.*"))
    odd = tmp_path / "mc_999999.mystery.GamGam.root"
    shutil.copy(src, odd)
    with pytest.raises(ManifestError, match=r"999999 \(mc_999999\.mystery.*--role 999999=ROLE"):
        build_manifest([str(odd)], 1000.0, config=config)
    built = build_manifest([str(odd)], 1000.0, config=config, roles={"999999": "continuum"})
    assert built["mystery"]["metadata"]["role"] == "continuum"
    with pytest.raises(ManifestError, match="--luminosity-pb"):
        build_manifest([str(src)], None, config=config)


def test_files_of_one_dsid_must_agree_on_the_sum_of_weights(opendata, tmp_path, config):
    folder, _ = opendata
    files = sorted((folder / "MC").glob("mc_341081.*"))
    assert len(files) >= 2
    data = uproot.open(files[1])["mini"].arrays(library="np")
    data["SumWeights"] = data["SumWeights"] * 2  # as if the file held its own per-file sum
    other = tmp_path / files[1].name
    with uproot.recreate(other) as f:
        f.mktree("mini", {k: v.dtype for k, v in data.items() if v.dtype != object})
        f["mini"].extend({k: v for k, v in data.items() if v.dtype != object})
    with pytest.raises(ManifestError, match="no input format matches .*opendata2020 lacks jet_E"):
        build_manifest([str(files[0]), str(other)], 1000.0, config=config)  # the copy has no jagged branches
    with pytest.raises(ManifestError, match="lacks branch.*jet_E"):  # told to read it so, run's file check says why not
        build_manifest([str(files[0]), str(other)], 1000.0, config=config, format_name="opendata2020")
    events = uproot.open(files[1])["mini"].arrays()
    columns = {k: events[k] * 2 if k == "SumWeights" else events[k] for k in events.fields}
    with uproot.recreate(other) as f:  # the jagged branches too: a complete file but for its sum of weights
        f.mktree("mini", {k: v.type for k, v in columns.items()})
        f["mini"].extend(columns)
    with pytest.raises(ManifestError, match="sum_weights .* differs"):
        build_manifest([str(files[0]), str(other)], 1000.0, config=config)


def test_manifest_roles_are_checked(tmp_path, dataset_dir):
    entry = json.loads((dataset_dir / "datasets.json").read_text())["ggH"]
    for meta, words in (({"role": "signal"}, "contradicts kind"), ({"role": "higgs"}, "must be one of"),
                        ({"dsid": 1}, "needs metadata 'role'")):
        broken = {"x": {"files": {str(dataset_dir / f): t for f, t in entry["files"].items()},
                        "metadata": {**{k: v for k, v in entry["metadata"].items() if k != "role"}, **meta}}}
        path = tmp_path / "m.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(ManifestError, match=words):
            load_manifest(path)
    # Without a role, a background takes the one the catalogue gives its DSID.
    legacy = {"x": {"files": {str(dataset_dir / f): t for f, t in entry["files"].items()},
                    "metadata": {k: v for k, v in entry["metadata"].items() if k != "role"}}}
    path.write_text(json.dumps(legacy))
    assert load_manifest(path).roles() == {"x": "resonant"}


def test_remote_files_are_listed_without_being_opened(opendata, config):
    """A root:// file is never opened: its DSID comes from its name, its numbers from a local file of that DSID."""
    folder, _ = opendata
    local = sorted((folder / "MC").glob("mc_341081.*"))[0]
    remote = "root://eospublic.cern.ch//eos/opendata/atlas/GamGam/MC/mc_341081.ttH125_gamgam.GamGam.root"
    built = build_manifest([str(local), remote, "https://example.org/Data/data_A.GamGam.root"], 1000.0, config=config)
    assert remote in built["ttH"]["files"] and built["ttH"]["metadata"]["sum_weights"] > 0
    assert "n_events" not in built["ttH"]["metadata"]  # the remote file's entries are not known
    assert list(built["data"]["files"]) == ["https://example.org/Data/data_A.GamGam.root"]
    with pytest.raises(ManifestError, match="no local, non-empty file"):
        build_manifest([remote], 1000.0, config=config)
