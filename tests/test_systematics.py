"""The systematics registry: per-event branch weights and correctionlib corrections plug in by configuration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ttH_adv.config import CorrectionlibSystematic
from ttH_adv.dump import read_dump
from ttH_adv.errors import ConfigError
from ttH_adv.event.systematics import SYSTEMATIC_KINDS, variations

from conftest import histogram_by_dataset, run

UP, DOWN = (1.10, 1.05, 1.10), (0.90, 0.95, 0.90)  # per |eta| region: end-cap, barrel, end-cap
EDGES = [-10.0, -1.37, 1.37, 10.0]


def _write_correction(path):
    """A photon-ID scale factor in eta with a systematic input, in correctionlib's schema v2."""
    import correctionlib.schemav2 as cs

    def binning(values):
        return cs.Binning(nodetype="binning", input="eta", edges=EDGES, content=list(values), flow="clamp")

    correction = cs.Correction(
        name="photon_id_sf", version=1,
        inputs=[cs.Variable(name="eta", type="real"), cs.Variable(name="pt", type="real"),
                cs.Variable(name="syst", type="string")],
        output=cs.Variable(name="sf", type="real"),
        data=cs.Category(nodetype="category", input="syst", content=[
            cs.CategoryItem(key="nominal", value=binning((1.0, 1.0, 1.0))),
            cs.CategoryItem(key="up", value=binning(UP)), cs.CategoryItem(key="down", value=binning(DOWN))]))
    path.write_text(cs.CorrectionSet(schema_version=2, corrections=[correction]).model_dump_json())
    return path


def _with_correctionlib(config, **settings):
    entry = CorrectionlibSystematic(**{"correction": "photon_id_sf", "inputs": ("photon1_eta", "photon1_pt", "systematic"),
                                       **settings})
    return dataclasses.replace(config, systematics=dataclasses.replace(config.systematics, correctionlib={"photon_id_clib": entry}))


def test_registry_lists_every_kind():
    assert set(SYSTEMATIC_KINDS) == {"weight", "branches", "correctionlib", "object"}


def test_correctionlib_systematic_weights_each_event_by_its_correction(small_manifest, config, tmp_path):
    configured = _with_correctionlib(config, file=str(_write_correction(tmp_path / "photon_id.json")))
    names = [v.name for v in variations(configured, "weights")]
    assert {"photon_id_clib_up", "photon_id_clib_down"} <= set(names)
    datasets = small_manifest.select(["ttH", "data"])
    out = run(datasets, configured, systematics="weights", dump_dir=str(tmp_path / "dump"))
    table = read_dump(tmp_path / "dump").to_pandas()
    mc = table[table.dataset == "ttH"]
    barrel = np.abs(mc.photon1_eta.to_numpy()) < 1.37
    assert barrel.any() and (~barrel).any()
    for column, (endcap, central) in (("weight_photon_id_clib_up", UP[:2]), ("weight_photon_id_clib_down", DOWN[:2])):
        expected = np.where(barrel, central, endcap)  # read back from the dump, computed here independently
        assert np.allclose(mc[column].to_numpy() / mc.weight.to_numpy(), expected, rtol=1e-6)
    data = table[table.dataset == "data"]
    assert np.array_equal(data.weight_photon_id_clib_up, data.weight)  # data are never varied
    h = histogram_by_dataset(out)
    systematics = list(out["histograms"]["mgg"].axes["systematic"])
    ttH = h["ttH"][0]
    up = ttH[:, :, systematics.index("photon_id_clib_up")].sum() / ttH[:, :, systematics.index("nominal")].sum()
    assert 1.05 < up < 1.10


def test_correctionlib_settings_are_checked_before_any_event(config, tmp_path):
    with pytest.raises(ConfigError, match="file not found: .*missing.json"):
        variations(_with_correctionlib(config, file=str(tmp_path / "missing.json")), "weights")
    path = _write_correction(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="no correction 'other'"):
        variations(_with_correctionlib(config, file=str(path), correction="other"), "weights")
    with pytest.raises(ConfigError, match=r"unknown input\(s\) \['photon_eta'\]"):
        variations(_with_correctionlib(config, file=str(path), inputs=("photon_eta", "systematic")), "weights")


def test_branch_systematic_takes_per_event_weights_from_branches(small_manifest, config, tmp_path):
    """weight x up/nominal per event; here the 'down' branch is the nominal one, so its weights are unchanged."""
    import uproot

    from ttH_adv.config import BranchSystematic

    entry = BranchSystematic(nominal="scaleFactor_PHOTON", up="scaleFactor_PILEUP", down="scaleFactor_PHOTON")
    configured = dataclasses.replace(config, systematics=dataclasses.replace(config.systematics, branches={"sf_swap": entry}))
    datasets = small_manifest.select(["ttH"])
    run(datasets, configured, systematics="weights", dump_dir=str(tmp_path / "dump"))
    table = read_dump(tmp_path / "dump").to_pandas()
    assert np.array_equal(table.weight_sf_swap_down, table.weight)
    branches = {}
    for path in datasets.datasets["ttH"].files:
        arrays = uproot.open(path)["mini"].arrays(["eventNumber", "scaleFactor_PHOTON", "scaleFactor_PILEUP"], library="np")
        branches.update(zip(arrays["eventNumber"], arrays["scaleFactor_PILEUP"] / arrays["scaleFactor_PHOTON"], strict=True))
    expected = np.array([branches[e] for e in table.eventNumber])
    assert np.allclose(table.weight_sf_swap_up / table.weight, expected, rtol=1e-6) and expected.std() > 0


def test_object_variations_reuse_the_nominal_stages_they_do_not_shift_with_identical_results(small_manifest, config):
    """A jet shift keeps the nominal photon and lepton stages: histograms and cutflows as if re-run from scratch."""
    from processors.run import RunOptions, run_analysis
    from processors.tth import Reuse, TthProcessor

    class FromScratch(TthProcessor):
        def select(self, objs, info, reuse=None):
            return super().select(objs, info, Reuse())  # a fresh memo per variation: every stage runs

    class Counting(TthProcessor):  # the executor runs a copy: the count travels in the output
        def process(self, events):
            self.photon_stages = 0
            out = super().process(events)
            out["photon_stages"] = self.photon_stages
            return out

        def select_photons(self, objs, info):
            self.photon_stages += 1
            return super().select_photons(objs, info)

    datasets = small_manifest.select(["ttH", "ttyy"])
    options = RunOptions(progress=False, systematics="all", align_clusters=False, chunksize=4_000)
    reused = run_analysis(datasets, config, options, processor_instance=Counting(config, systematics="all"))
    scratch = run_analysis(datasets, config, options, processor_instance=FromScratch(config, systematics="all"))
    a, b = histogram_by_dataset(reused), histogram_by_dataset(scratch)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key][0], b[key][0])
        np.testing.assert_array_equal(a[key][1], b[key][1])
    assert reused["cutflow"] == scratch["cutflow"]
    h = reused["histograms"]["mgg"]
    jes = h[{"systematic": "jet_energy_scale_up"}].values()
    assert not np.array_equal(jes, h[{"systematic": "nominal"}].values())  # the jet shift still moves events
    chunks = sum(len(c) for c in reused["metadata"]["chunks"].values())
    # per chunk: nominal and the two photon shifts run the photon stage; the jet and lepton shifts reuse it
    assert reused["photon_stages"] == 3 * chunks
