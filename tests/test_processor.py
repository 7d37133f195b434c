"""The ttH(yy) processor: equivalence, bookkeeping, physics sanity, systematics, dump."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
import uproot

from processors.tth import quantise
from ttH_adv.app.cli import main
from ttH_adv.dump import read_dump
from ttH_adv.event.selections import COMMON_STEPS
from ttH_adv.inputs.manifest import Manifest
from ttH_adv.output import export_root, load_output, merge_outputs, save_output

from conftest import histogram_by_dataset, run
from helpers import read_all


@pytest.fixture(scope="module")
def nominal(small_manifest, config):
    return run(small_manifest, config, chunksize=100_000)


def _assert_identical(a, b):
    ha, hb = histogram_by_dataset(a), histogram_by_dataset(b)
    assert ha.keys() == hb.keys()
    for name in ha:
        assert np.array_equal(ha[name][0], hb[name][0]), name
        assert np.array_equal(ha[name][1], hb[name][1]), name
    assert a["cutflow"] == b["cutflow"]


def test_executors_and_chunk_sizes_agree_bit_for_bit(small_manifest, config, nominal):
    small_chunks = run(small_manifest, config, chunksize=1_500)
    _assert_identical(nominal, small_chunks)
    _assert_identical(nominal, run(small_manifest, config, executor="futures", workers=2, chunksize=1_500))
    _assert_identical(nominal, run(small_manifest, config, executor="dask", workers=2, chunksize=2_500))
    _assert_identical(nominal, run(small_manifest, config, executor="dask", workers=2, chunksize=100_000,
                                   worker_start="spawn"))


def _in_baskets(src, dst, basket):
    """A copy of a generated file written ``basket`` events at a time (one basket per branch each)."""
    data = read_all(src)
    n = len(data["eventNumber"])
    with uproot.recreate(dst) as f:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.type.content) for k, v in data.items()}
        tree = f.mktree("mini", types, counter_name=lambda c: f"{c}_n")
        for start in range(0, n, basket):
            tree.extend({k: v[start:start + basket] for k, v in data.items()})
    return dst


def test_chunks_end_on_basket_boundaries_with_identical_results(small_manifest, config, tmp_path):
    """Aligned chunks (the default) start where every branch starts a basket; results are unchanged."""
    info = small_manifest.datasets["data"]
    files = {str(_in_baskets(path, tmp_path / f"data_{i}.root", 250)): "mini" for i, path in enumerate(info.files)}
    manifest = Manifest(small_manifest.path, {"data": dataclasses.replace(info, files=files)})
    aligned = run(manifest, config, chunksize=600, align_clusters=True)
    exact = run(manifest, config, chunksize=600)
    _assert_identical(aligned, exact)
    edges = [tuple(map(int, c.rsplit(":", 1)[1].split("-"))) for c in aligned["metadata"]["chunks"]["data"]]
    entries = {path: uproot.open(path)["mini"].num_entries for path in files}
    for start, stop in edges:
        assert start % 250 == 0 and (stop % 250 == 0 or stop in entries.values())
    inner = [stop - start for start, stop in edges if stop not in entries.values()]
    assert len(inner) >= 2 and min(inner) >= 600
    assert aligned["metadata"]["aligned_chunks"] and not exact["metadata"]["aligned_chunks"]


def test_cutflow_steps_nest_and_regions_partition(nominal):
    for name, cutflow in nominal["cutflow"].items():
        events = [cutflow[s]["events"] for s in COMMON_STEPS]
        assert events == sorted(events, reverse=True), name  # each step keeps a subset
        assert cutflow["all"]["events"] == nominal["metadata"]["events_read"][name]
        assert cutflow["TI"]["events"] + cutflow["NTNI"]["events"] == cutflow["unblinded"]["events"]
        for region in ("TI", "NTNI"):
            assert cutflow[f"{region}_had"]["events"] + cutflow[f"{region}_lep"]["events"] <= cutflow[region]["events"]
            w = cutflow[f"{region}_had"]["weighted"] + cutflow[f"{region}_lep"]["weighted"]
            assert w <= cutflow[region]["weighted"] * (1 + 1e-12) + 1e-9


def _independent_preselection(manifest, dataset):
    """The diphoton preselection recomputed from plain uproot arrays, without the package."""
    sfs = [f"scaleFactor_{sf}" for sf in ("PILEUP", "PHOTON", "PhotonTRIGGER", "ELE", "MUON", "BTAG")]
    arrays = uproot.concatenate(manifest.datasets[dataset].files,
                                ["photon_pt", "photon_eta", "photon_phi", "trigP", "mcWeight", *sfs], library="ak")
    pt, eta, phi = arrays.photon_pt / 1000, arrays.photon_eta, arrays.photon_phi
    abs_eta = abs(eta)
    ok = (pt > 25) & (abs_eta < 2.37) & ~((abs_eta > 1.37) & (abs_eta < 1.52))
    pt, eta, phi = pt[ok], eta[ok], phi[ok]
    two = ak.to_numpy(ak.num(pt) >= 2)
    p1, p2 = ak.pad_none(pt, 2)[:, 0], ak.pad_none(pt, 2)[:, 1]
    e1, e2 = ak.pad_none(eta, 2)[:, 0], ak.pad_none(eta, 2)[:, 1]
    f1, f2 = ak.pad_none(phi, 2)[:, 0], ak.pad_none(phi, 2)[:, 1]
    m = ak.to_numpy(ak.fill_none(np.sqrt(2 * p1 * p2 * (np.cosh(e1 - e2) - np.cos(f1 - f2))), 0.0))
    rel = ak.to_numpy(ak.fill_none((p1 > 0.35 * m) & (p2 > 0.25 * m), False))
    trig = ak.to_numpy(arrays.trigP)
    w = ak.to_numpy(arrays.mcWeight).astype(np.float64)
    for sf in sfs:
        w = w * ak.to_numpy(arrays[sf]).astype(np.float64)
    return {"trigger": trig, "two_photons": trig & two, "relative_pt": trig & two & rel,
            "mass_window": trig & two & rel & (m > 105) & (m < 160)}, quantise(w)


@pytest.mark.parametrize("dataset", ["ttH", "data", "yyjets"])
def test_cutflow_matches_an_independent_computation(nominal, small_manifest, dataset):
    masks, w = _independent_preselection(small_manifest, dataset)
    info = small_manifest.datasets[dataset]
    for step, mask in masks.items():
        assert nominal["cutflow"][dataset][step]["events"] == mask.sum(), step
        expected = w[mask].sum() * info.norm
        assert nominal["cutflow"][dataset][step]["weighted"] == pytest.approx(expected, rel=1e-9), step


def test_mc_yield_is_luminosity_times_xsec_times_efficiency(nominal, small_manifest):
    info = small_manifest.datasets["ttH"]
    x = uproot.concatenate(info.files, ["mcWeight"], library="np")
    # Before any cut the normalised sum of mcWeight alone is sigma x L exactly.
    assert np.sum(x["mcWeight"].astype(np.float64)) * info.norm == pytest.approx(info.xsec_pb * info.luminosity_pb,
                                                                                 rel=1e-9)
    cutflow = nominal["cutflow"]["ttH"]
    masks, w = _independent_preselection(small_manifest, "ttH")
    efficiency = w[masks["mass_window"]].sum() / x["mcWeight"].astype(np.float64).sum()
    assert cutflow["mass_window"]["weighted"] == pytest.approx(info.luminosity_pb * info.xsec_pb * efficiency, rel=1e-9)


def test_histogram_totals_equal_cutflow(nominal):
    h = nominal["histograms"]["mgg"]
    for name, cutflow in nominal["cutflow"].items():
        for region in ("TI", "NTNI"):
            for channel in ("had", "lep"):
                total = h[{"dataset": name, "region": region, "category": channel, "systematic": "nominal"}].sum()
                assert total.value == pytest.approx(cutflow[f"{region}_{channel}"]["weighted"], rel=1e-12)


def test_signal_peaks_at_125_and_background_falls(nominal):
    h = nominal["histograms"]["mgg"]
    signal = h[{"dataset": "ttH", "region": "TI", "category": sum, "systematic": "nominal"}]
    centres = signal.axes[0].centers
    assert 124.0 < centres[np.argmax(signal.values())] < 126.0
    mean = np.average(centres, weights=signal.values())
    assert 124.0 < mean < 126.0
    data = h[{"dataset": "data", "region": "NTNI", "category": sum, "systematic": "nominal"}].values()
    coarse = data.reshape(11, 10).sum(axis=1)
    assert coarse[0] > coarse[5] > coarse[10] > 0


def test_data_signal_region_is_blinded_unless_asked(nominal, small_manifest, config):
    h = nominal["histograms"]["mgg"]
    centres = h.axes["mgg"].centers
    window = (centres > 120) & (centres < 130)
    ti = h[{"dataset": "data", "region": "TI", "category": sum, "systematic": "nominal"}].values()
    ntni = h[{"dataset": "data", "region": "NTNI", "category": sum, "systematic": "nominal"}].values()
    assert ti[window].sum() == 0 and ti[~window].sum() > 0
    assert ntni[window].sum() > 0  # the control region is never blinded
    unblinded = run(small_manifest.select(["data"]), config, unblind=True)
    ti_open = unblinded["histograms"]["mgg"][{"dataset": "data", "region": "TI", "category": sum,
                                               "systematic": "nominal"}].values()
    assert ti_open[window].sum() > 0 and np.array_equal(ti_open[~window], ti[~window])


def test_systematic_variations(small_manifest, config, nominal):
    out = run(small_manifest.select(["ttH", "data"]), config, systematics="all")
    h = out["histograms"]["mgg"]

    def values(dataset, syst):
        return h[{"dataset": dataset, "region": "TI", "category": sum, "systematic": syst}].values()

    ref = nominal["histograms"]["mgg"][{"dataset": "ttH", "region": "TI", "category": sum, "systematic": "nominal"}]
    assert np.array_equal(values("ttH", "nominal"), ref.values())
    assert np.allclose(values("ttH", "photon_id_sf_up"), 1.02 * values("ttH", "nominal"), rtol=1e-6)
    assert np.allclose(values("ttH", "btag_sf_down"), 0.95 * values("ttH", "nominal"), rtol=1e-6)
    centres = h.axes["mgg"].centers
    mean = {s: np.average(centres, weights=values("ttH", s)) for s in
            ("photon_energy_scale_down", "nominal", "photon_energy_scale_up")}
    assert mean["photon_energy_scale_down"] < mean["nominal"] - 0.3 < mean["nominal"] + 0.3 < mean["photon_energy_scale_up"]
    # The jet energy scale moves events across the jet-pT threshold, so channel yields change.
    had = {s: h[{"dataset": "ttH", "region": "TI", "category": "had", "systematic": s}].sum().value
           for s in ("jet_energy_scale_down", "nominal", "jet_energy_scale_up")}
    assert had["jet_energy_scale_down"] < had["nominal"] < had["jet_energy_scale_up"]
    # Data get no variations: its variation slices stay empty.
    assert values("data", "photon_energy_scale_up").sum() == 0 and values("data", "nominal").sum() > 0


def test_feature_dump_is_complete_and_without_duplicates(small_manifest, config, nominal, tmp_path):
    dump = tmp_path / "dump"
    first = run(small_manifest, config, executor="futures", workers=2, chunksize=3_000, dump_dir=str(dump))
    run(small_manifest, config, executor="futures", workers=2, chunksize=3_000, dump_dir=str(dump))  # rerun: overwrite
    table = read_dump(dump).to_pandas()
    assert not table.duplicated(["dataset", "eventNumber", "systematic"]).any()
    for name, cutflow in first["cutflow"].items():
        rows = table[table.dataset == name]
        assert len(rows) == cutflow["unblinded"]["events"]
        for region in ("TI", "NTNI"):
            for channel in ("had", "lep"):
                sel = rows[(rows.region == region) & (rows.channel == channel)]
                assert len(sel) == cutflow[f"{region}_{channel}"]["events"]
                assert sel.weight.sum() == pytest.approx(cutflow[f"{region}_{channel}"]["weighted"], rel=1e-9, abs=1e-12)
    from ttH_adv.event.features import FEATURE_SETS
    assert set(FEATURE_SETS["extended"]) | set(FEATURE_SETS["scaled"]) <= set(table.columns)
    assert (table.jet3_pt[table.n_jets < 3] == 0).all() and (table.jet3_pt[table.n_jets >= 3] > 25).all()


def test_export_to_root(nominal, tmp_path):
    path = export_root(nominal, tmp_path / "h.root")
    with uproot.open(path) as f:
        h = f["ttH/TI/had/nominal"]
        ref = nominal["histograms"]["mgg"][{"dataset": "ttH", "region": "TI", "category": "had", "systematic": "nominal"}]
        assert np.allclose(h.values(), ref.values()) and np.allclose(h.errors() ** 2, ref.variances())
        assert h.axis().edges()[0] == 105 and h.axis().edges()[-1] == 160


def test_outputs_of_separate_runs_merge(small_manifest, config, nominal, tmp_path, caplog):
    """Runs over disjoint datasets add up to the run over all of them, in the library and by tth-adv merge."""
    names = list(small_manifest.datasets)
    parts = [run(small_manifest.select(names[:4]), config), run(small_manifest.select(names[4:]), config)]
    merged = merge_outputs(parts)
    _assert_identical(merged, nominal)
    assert len(merged["metadata"]["merged_from"]) == 2
    saved = [str(save_output(p, tmp_path / f"part{i}.zip")) for i, p in enumerate(parts)]
    assert main(["merge", "--outputs", *saved, "--out", str(tmp_path / "merged.zip")]) == 0
    _assert_identical(load_output(tmp_path / "merged.zip"), nominal)
    assert main(["merge", "--plan", "plan.json", "--out", str(tmp_path / "x.zip")]) == 2  # neither form complete
    assert "either --plan and --partials" in caplog.text


def _sorted_dump(folder):
    table = read_dump(folder).to_pandas()
    return table.sort_values(["dataset", "systematic", "eventNumber"]).reset_index(drop=True)


def test_every_variation_and_the_dump_agree_across_executors(small_manifest, config, tmp_path):
    """--systematics all: histograms, cutflows and the feature dumps are identical (futures vs iterative)."""
    datasets = small_manifest.select(["ttH", "data", "yyjets"])
    iterative = run(datasets, config, systematics="all", chunksize=20_000, dump_dir=str(tmp_path / "a"))
    futures = run(datasets, config, systematics="all", executor="futures", workers=2, chunksize=700,
                  dump_dir=str(tmp_path / "b"))
    _assert_identical(iterative, futures)
    files = {label: len(list((tmp_path / label).rglob("*.parquet"))) for label in "ab"}
    assert files["b"] > files["a"]  # the chunkings really differ (coffea rounds chunk counts per file)
    assert len(iterative["histograms"]["mgg"].axes["systematic"]) == 15
    a, b = _sorted_dump(tmp_path / "a"), _sorted_dump(tmp_path / "b")
    assert len(a) > 1000 and set(a.systematic) > {"nominal"}
    assert a.equals(b)  # every column of every row, object variations included


def test_dump_files_carry_their_provenance_and_mixed_dumps_are_refused(small_manifest, config, tmp_path):
    import json

    import ttH_adv
    from ttH_adv.config import config_hash, config_to_data
    from ttH_adv.dump import read_provenance
    from ttH_adv.errors import TthAdvError
    from ttH_adv.event.features import FEATURE_SET_VERSION

    datasets = small_manifest.select(["ttH"])
    run(datasets, config, dump_dir=str(tmp_path / "dump"))
    first = sorted((tmp_path / "dump").rglob("*.parquet"))
    made = read_provenance(first[0])
    assert made == {"config_hash": config_hash(config), "model_sha256": "none", "version": ttH_adv.__version__,
                    "feature_set_version": json.dumps(FEATURE_SET_VERSION, sort_keys=True),
                    "config": json.dumps(config_to_data(config), sort_keys=True)}
    other = dataclasses.replace(config, jets=dataclasses.replace(config.jets, pt_min=config.jets.pt_min + 5))
    run(datasets, other, dump_dir=str(tmp_path / "dump"), chunksize=300)  # other chunks: new files beside the old
    with pytest.raises(TthAdvError, match=r"mixes 2 provenances \(differing in config, config_hash"):
        read_dump(tmp_path / "dump")
    assert len(sorted((tmp_path / "dump").rglob("*.parquet"))) > len(first)
    assert len(read_dump(tmp_path / "dump", allow_mixed=True)) > 0


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_progress_bars_follow_the_option(small_manifest, config, executor, capsys):
    """coffea draws its bars whatever its ``status`` says; --no-progress must still silence them."""
    run(small_manifest, config, executor=executor, maxchunks=1, progress=False)
    assert "Processing" not in capsys.readouterr().out
    run(small_manifest, config, executor=executor, maxchunks=1, progress=True)
    assert "Processing" in capsys.readouterr().out


def test_no_chunk_data_waits_for_the_cyclic_garbage_collector(small_manifest, config):
    """A chunk's arrays are freed when it ends, not at Python's rare full collection.

    uproot's per-file array cache lives in a reference cycle with the closed file; had it kept
    the chunk's arrays, each worker would hold every chunk's data until a full collection.
    """
    import gc

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run(small_manifest, config, chunksize=5_000)
        gc.collect()
        held = [o for o in gc.garbage if isinstance(o, (ak.Array, np.ndarray))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not held, f"{len(held)} arrays were held in reference cycles"


def test_a_reader_registered_outside_the_package_reads_the_files_and_an_unknown_one_is_named(
        small_manifest, config, nominal):
    from ttH_adv.errors import ConfigError
    from ttH_adv.inputs import objects

    flat, seen = objects.READERS["flat"], []

    def counting_collections(events, fmt, fields):
        seen.append(len(events))
        return flat.collections(events, fmt, fields)

    def with_reader(name):
        formats = {key: dataclasses.replace(fmt, reader=name) for key, fmt in config.formats.items()}
        return dataclasses.replace(config, formats=formats)

    objects.register_reader("toy", dataclasses.replace(flat, collections=counting_collections))
    try:
        toy = run(small_manifest, with_reader("toy"), executor="iterative", chunksize=100_000)
    finally:
        del objects.READERS["toy"]
    _assert_identical(nominal, toy)
    assert sum(seen) == sum(d.n_events for d in small_manifest.datasets.values()) > 0  # every event, by the toy
    with pytest.raises(ConfigError, match="unknown reader 'nonesuch'.*known: \\['flat', 'physlite'\\]"):
        run(small_manifest, with_reader("nonesuch"), executor="iterative")
