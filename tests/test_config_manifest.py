"""Configuration loading and the datasets manifest: defaults, overrides, every bad-input path."""

from __future__ import annotations

import json

import pytest

from ttH_adv.config import load_config
from ttH_adv.errors import ConfigError, ManifestError
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.objects import required_branches

from helpers import write_manifest


def test_defaults_carry_design_values(config):
    assert config.photons.pt_min == 25.0 and config.photons.crack == (1.37, 1.52)
    assert (config.photons.lead_pt_over_mass, config.photons.sublead_pt_over_mass) == (0.35, 0.25)
    assert (config.mass.low, config.mass.high, config.mass.n_bins) == (105.0, 160.0, 110)
    assert config.channels["had"].min_jets == 3 and config.channels["had"].max_leptons == 0
    assert config.channels["lep"].min_leptons == 1 and config.channels["lep"].min_jets == 2
    assert "photon_isTightID" in required_branches(config.format(), is_data=True)


def test_user_file_overrides_a_subset(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("photons: {pt_min: 30}\nchannels: {had: {min_jets: 4}}\n")
    cfg = load_config(f)
    assert cfg.photons.pt_min == 30.0 and cfg.photons.abs_eta_max == 2.37
    assert cfg.channels["had"].min_jets == 4 and cfg.channels["had"].min_bjets == 1


@pytest.mark.parametrize("text, message", [
    ("photons: {pt_minimum: 30}\n", "unknown key(s) ['pt_minimum'] in 'config.photons'"),
    ("photon: {pt_min: 30}\n", "unknown key(s) ['photon']"),
    ("photons: {pt_min: fast}\n", "'config.photons.pt_min' must be a number"),
    ("mass: [1, 2]\n", "'config.mass' must be a mapping"),
    ("photons: {pt_min: 30\n", "not valid YAML"),
    ("- 1\n- 2\n", "a mapping at top level"),
    ("fits: {efficiency_bandwidths: [2.0, 0.0]}\n", "'fits.efficiency_bandwidths' needs widths > 0 GeV"),
    ("fits: {efficiency_tolerance: -1}\n", "'fits.efficiency_tolerance' needs a value >= 0"),
    ("fits: {template_replicas: 1}\n", "'fits.template_replicas' needs at least 2"),
    ("control_categories: {single_higgs: '2'}\n", "'control_categories' must give each class its own name"),
    ("control_categories: {single_higgs: H, continuum: H}\n", "'control_categories' must give each class its own"),
])
def test_bad_configuration_is_named(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert message in str(err.value) and "bad.yaml" in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_manifest_round_trips(manifest, tmp_path):
    copy = write_manifest(manifest, manifest.path.parent / "copy.json")
    again = load_manifest(copy)
    assert again.datasets == manifest.datasets
    assert manifest.fileset()["ttH"]["metadata"]["kind"] == "signal"
    assert all(f.startswith("/") for f in manifest.fileset()["data"]["files"])


def _manifest_text(manifest, edit):
    raw = json.loads(manifest.path.read_text())
    edit(raw)
    return raw


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["ttH"]["metadata"].pop("xsec_pb"), "dataset 'ttH': MC sample needs 'xsec_pb'"),
    (lambda r: r["data"]["metadata"].update(xsec_pb=1.0), "dataset 'data': data sample must not have 'xsec_pb'"),
    (lambda r: r["ttH"]["metadata"].update(colour="red"), "dataset 'ttH': unknown metadata key 'colour'"),
    (lambda r: r["ttH"].update(file=[]), "dataset 'ttH': unknown key 'file'"),
    (lambda r: r["ttH"]["metadata"].update(kind="signl"), "'kind' must be one of"),
    (lambda r: r["ttH"]["metadata"].update(kind="data"), "kind 'data' contradicts is_data=False"),
    (lambda r: r["ttH"]["metadata"].update(sum_weights=-3), "'sum_weights' must be a positive number"),
    (lambda r: r["ttH"].update(files={}), "'files' must be a non-empty list"),
    (lambda r: r["ttH"]["files"].update({"ttH/missing.root": "mini"}), "file not found"),
])
def test_bad_manifest_is_named(manifest, tmp_path, edit, message):
    path = manifest.path.parent / "bad.json"
    path.write_text(json.dumps(_manifest_text(manifest, edit)))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert message in str(err.value) and "bad.json" in str(err.value)


def test_every_manifest_problem_is_reported_at_once(manifest):
    def edit(raw):
        raw["ttH"]["metadata"].pop("xsec_pb")
        raw["data"]["metadata"]["sum_weights"] = 3.0
    path = manifest.path.parent / "bad2.json"
    path.write_text(json.dumps(_manifest_text(manifest, edit)))
    with pytest.raises(ManifestError, match="2 problem"):
        load_manifest(path)


def test_malformed_manifest_files(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path / "x.json")
    (tmp_path / "y.yaml").write_text("[]\n")
    with pytest.raises(ManifestError, match="a mapping at top level"):
        load_manifest(tmp_path / "y.yaml")
