"""The flat-ntuple schema, the GeV objects and the per-file branch check."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from ttH_adv.config import load_config
from ttH_adv.errors import InputFileError, MissingBranchError
from ttH_adv.inputs import objects
from ttH_adv.inputs.objects import required_branches
from ttH_adv.inputs.schema import check_branches
from ttH_adv.inputs.schema import read_events as read_events_of_file

from conftest import read_events
from helpers import empty_copy, truncated_copy, without_branch


def _first_file(manifest, name="ttH"):
    return next(iter(manifest.datasets[name].files))


def test_schema_zips_collections_and_keeps_extra_branches(manifest, config):
    events = read_events(manifest, "ttH", config)
    assert {"photon", "jet", "lepton", "met"} <= set(events.fields)
    assert set(events.photon.fields) == set(config.format().branches.collections["photon"].fields)
    # Unmapped Open Data branches stay available under their own names.
    assert "photon_convType" in events.fields and "scaleFactor_TAU" in events.fields
    assert ak.all(ak.num(events.photon) == events.photon_n)


def test_objects_are_lorentz_vectors_in_gev(manifest, config):
    events = read_events(manifest, "ttH", config)
    photons = objects.photons(events, config.format())
    raw_pt = ak.flatten(events.photon.pt)
    assert np.allclose(ak.to_numpy(ak.flatten(photons.pt)), ak.to_numpy(raw_pt) / 1000.0)
    two = photons[ak.num(photons) >= 2]
    mass = ak.to_numpy((two[:, 0] + two[:, 1]).mass)
    # The photons are massless: m^2 = 2 pT1 pT2 (cosh deta - cos dphi).
    a, b = two[:, 0], two[:, 1]
    expected = np.sqrt(2 * a.pt * b.pt * (np.cosh(a.eta - b.eta) - np.cos(a.phi - b.phi)))
    assert np.allclose(mass, ak.to_numpy(expected), rtol=1e-3, atol=1e-3)
    leptons = objects.leptons(events, config.format())
    assert set(np.unique(ak.to_numpy(ak.flatten(leptons["type"])))) == {11, 13}  # electrons and muons, in GeV
    assert ak.sum(ak.num(leptons)) == ak.sum(ak.num(events.lepton)) and ak.min(ak.flatten(leptons.pt)) < 1000
    met = objects.met(events, config.format())
    assert 10 < np.median(ak.to_numpy(met.et)) < 200


def test_branch_map_is_configuration(tmp_path, manifest):
    """Another ntuple naming: rename a field in the YAML, not in code."""
    cfg_file = tmp_path / "renamed.yaml"
    cfg_file.write_text("formats:\n  opendata2020:\n    branches:\n      collections:\n        photon:\n"
                        "          prefix: photon_\n"
                        "          fields: {pt: pt, eta: eta, phi: phi, energy: E, tight: isTightID}\n")
    cfg = load_config(cfg_file)
    events = read_events_of_file(_first_file(manifest), cfg.format().branches)
    assert "tight" in events.photon.fields and "ptcone30" not in events.photon.fields
    assert "photon_ptcone30" in events.fields


def test_check_branches_passes_on_good_file(manifest, config):
    path = _first_file(manifest)
    n = check_branches(path, "mini", required_branches(config.format(), False), "ttH")
    assert n == manifest.datasets["ttH"].n_events // 3


def test_missing_branch_named_with_file_and_tree(tmp_path, manifest, config):
    bad = without_branch(_first_file(manifest), tmp_path / "no_tight.root", "photon_isTightID")
    with pytest.raises(MissingBranchError) as err:
        check_branches(str(bad), "mini", required_branches(config.format(), False), "ttH")
    message = str(err.value)
    assert "photon_isTightID" in message and str(bad) in message and "'mini'" in message and "ttH" in message
    # The schema itself refuses too, before any event is read.
    with pytest.raises(MissingBranchError, match=r"no_tight\.root, tree 'mini' lacks.*photon_isTightID"):
        read_events_of_file(str(bad), config.format().branches, mode="virtual")


def test_missing_corrupt_and_treeless_files(tmp_path, manifest, config):
    with pytest.raises(InputFileError, match="not found"):
        check_branches(str(tmp_path / "nope.root"), "mini", [], "ttH")
    broken = truncated_copy(_first_file(manifest), tmp_path / "cut.root", 0.3)
    with pytest.raises(InputFileError, match="cut.root"):
        check_branches(str(broken), "mini", required_branches(config.format(), False), "ttH")
    with pytest.raises(InputFileError, match=r"has no tree 'nominal' \(its trees: mini\)"):
        check_branches(_first_file(manifest), "nominal", [], "ttH")


def test_empty_tree_is_valid_input(tmp_path, manifest, config):
    empty = empty_copy(_first_file(manifest), tmp_path / "empty.root")
    assert check_branches(str(empty), "mini", required_branches(config.format(), False)) == 0
