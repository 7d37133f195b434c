"""The commands a physicist types, end to end on a small generated dataset, each judged by its output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

from ttH_adv.app.cli import main
from ttH_adv.output import load_output
from ttH_adv.report.plotting import _luminosity

from conftest import histogram_by_dataset, run


def test_condor_slices_resubmission_merge_and_root_export(small_manifest, config, tmp_path, caplog):
    """submit (dry run) -> job per slice -> a lost slice resubmitted alone -> merge -> export-root."""
    folder = tmp_path / "submit"
    manifest = str(small_manifest.path)
    assert main(["--no-progress", "condor", "submit", "--datasets", manifest, "--jobs", "3", "--out", str(folder),
                 "--chunksize", "4000", "--dry-run"]) == 0
    assert (folder / "slices.txt").read_text().split() == ["0000", "0001", "0002"]

    def job(i):
        partial = folder / "partials" / f"partial_{i:04d}.zip"
        assert main(["--no-progress", "condor", "job", "--plan", str(folder / "plan.json"), "--slice", str(i),
                     "--out", str(partial)]) == 0
        return partial

    partials = [job(i) for i in range(3)]
    partials[1].unlink()  # a job lost on the pool
    assert main(["condor", "submit", "--out", str(folder), "--resubmit-missing", "--dry-run"]) == 0
    assert (folder / "slices.txt").read_text() == "0001\n"
    merged = tmp_path / "merged.zip"
    assert main(["merge", "--plan", str(folder / "plan.json"), "--partials", str(folder / "partials"),
                 "--out", str(merged)]) == 2
    assert "missing slice(s) [1]" in caplog.text and not merged.exists()
    job(1)
    assert main(["merge", "--plan", str(folder / "plan.json"), "--partials", str(folder / "partials"),
                 "--out", str(merged)]) == 0
    output, single = load_output(merged), run(small_manifest, config)
    a, b = histogram_by_dataset(output), histogram_by_dataset(single)
    assert a.keys() == b.keys() and all(np.array_equal(a[d][0], b[d][0]) for d in a)
    assert output["cutflow"] == single["cutflow"]
    assert set(output["metadata"]) == set(single["metadata"])  # a merged batch records what a single run does
    for key in ("events_read", "objects", "entries_in_files", "roles", "luminosity_pb", "config", "categories"):
        assert output["metadata"][key] == single["metadata"][key], key
    assert _luminosity(output) == small_manifest.luminosity_pb() > 0  # the plots' luminosity label
    assert main(["export-root", "--input", str(merged), "--out", str(tmp_path / "h.root")]) == 0
    h = output["histograms"]["mgg"]
    with uproot.open(tmp_path / "h.root") as f:
        for dataset in ("ttH", "data"):
            written = f[f"{dataset}/TI/had/nominal"]
            expected = h[{"dataset": dataset, "region": "TI", "category": "had", "systematic": "nominal"}]
            assert np.allclose(written.values(), expected.values()) and written.values().sum() > 0


def test_categorize_command_writes_descending_boundaries_with_enough_sideband(small_manifest, config, tmp_path,
                                                                              capsys):
    pytest.importorskip("tensorflow")
    manifest = str(small_manifest.path)
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(tmp_path / "plain"),
                 "--dump-features", str(tmp_path / "features")]) == 0
    assert main(["--no-progress", "train", "--features", str(tmp_path / "features"), "--out", str(tmp_path / "model"),
                 "--method", "classifier", "--epochs", "1", "--layers", "16"]) == 0
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(tmp_path / "scored"), "--model",
                 str(tmp_path / "model" / "model.onnx"), "--dump-features", str(tmp_path / "scored_features")]) == 0
    capsys.readouterr()
    assert main(["categorize", "--features", str(tmp_path / "scored_features"), "--out", str(tmp_path / "cat.json"),
                 "--had", "2", "--lep", "1", "--min-sideband", "3"]) == 0
    assert "combined expected Z" in capsys.readouterr().out
    result = json.loads((tmp_path / "cat.json").read_text())
    assert len(result["categories"]["had"]) == 2 and len(result["categories"]["lep"]) == 1
    assert result["categories"]["had"][0] > result["categories"]["had"][1]
    assert all(n >= 3 for d in result["details"].values() for n in d["sideband_events"])
    assert result["fewer_than_requested"] == {}
    # more categories than the sidebands support: each channel gets the most it can, recorded
    assert main(["categorize", "--features", str(tmp_path / "scored_features"), "--out", str(tmp_path / "few.json"),
                 "--had", "8", "--lep", "6", "--min-sideband", "5"]) == 0
    fewer = json.loads((tmp_path / "few.json").read_text())
    for channel, asked in (("had", 8), ("lep", 6)):
        found = len(fewer["categories"][channel])
        assert 1 <= found < asked and fewer["fewer_than_requested"][channel] == {"requested": asked, "found": found}
        assert min(fewer["details"][channel]["sideband_events"]) >= 5
    # the boundaries run through the processor: its categories are the boundaries' categories
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(tmp_path / "categorised"), "--model",
                 str(tmp_path / "model" / "model.onnx"), "--categories", str(tmp_path / "cat.json")]) == 0
    h = load_output(tmp_path / "categorised" / "output.zip")["histograms"]["mgg"]
    assert list(h.axes["category"]) == ["had_1", "had_2", "lep_1"]


def test_run_on_dask_gives_the_same_output_with_each_worker_start(small_manifest, tmp_path):
    """`tth-adv run --executor dask`: a fork server started before the imports, or spawned workers."""
    outputs = {}
    for start in ("forkserver", "spawn"):
        out = tmp_path / start
        assert main(["--no-progress", "run", "--datasets", str(small_manifest.path), "--out", str(out),
                     "--executor", "dask", "--workers", "2", "--worker-start", start, "--chunksize", "5000"]) == 0
        outputs[start] = histogram_by_dataset(load_output(out / "output.zip"))
    for name, (values, variances) in outputs["forkserver"].items():
        assert np.array_equal(values, outputs["spawn"][name][0]) and np.array_equal(variances, outputs["spawn"][name][1])


@pytest.mark.validation
def test_compare_writes_a_row_per_trained_result_across_feature_sets(small_manifest, tmp_path, capsys):
    """`tth-adv compare` over two training folders (seed and extended features): every result scored in one pass,
    categorised, filled in one pass and fitted; one table row each, R50 over the ceiling the seed classifier's
    networks give at each row's own flatness."""
    pytest.importorskip("tensorflow")
    manifest = str(small_manifest.path)
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(tmp_path / "plain"),
                 "--dump-features", str(tmp_path / "features")]) == 0
    small = tmp_path / "small.yaml"  # ddt's map in few m_yy bins: this dataset has a few hundred background events
    small.write_text("baselines: {ddt_bins: 3, ddt_levels: 11, ceiling_events_per_bin: 10}\n")
    for folder, feature_set, methods in (("seed", "seed", ["classifier", "ddt"]),
                                         ("extended", "extended", ["adversarial"])):
        assert main(["--no-progress", "train", "--features", str(tmp_path / "features"), "--out",
                     str(tmp_path / folder), "--feature-set", feature_set, "--method", *methods, "--epochs", "1",
                     "--layers", "16", "--lambda", "10", "--config", str(small)]) == 0
    capsys.readouterr()
    assert main(["--no-progress", "compare", "--datasets", manifest, "--models", str(tmp_path / "seed"),
                 str(tmp_path / "extended"), "--out", str(tmp_path / "compare"), "--had", "2", "--lep", "1",
                 "--min-sideband", "3", "--executor", "futures"]) == 0
    assert "Best mean expected significance" in capsys.readouterr().out
    result = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    rows = {r["label"]: r for r in result["rows"]}
    assert set(rows) == {"seed.classifier", "seed.ddt", "extended.adversarial_lam10"}
    for label, row in rows.items():
        fit = json.loads((tmp_path / "compare" / label / "fits" / "fits.json").read_text())
        assert row["categories"] == len(fit["categories"]) and row["with_function"] == len(
            [c for c in fit["categories"] if c["chosen_family"] and not c["fallback"]])
        assert row["fallback"] == len([c for c in fit["categories"] if c["fallback"]])
        assert row["z"] <= row["z_statistical"] + 1e-9  # the uncertainties never add sensitivity
        output = load_output(tmp_path / "compare" / label / "output.zip")
        assert output["metadata"]["model"]["path"].endswith(f"{label.split('.', 1)[1]}.onnx")
        assert list(output["histograms"]) == ["mgg", "mgg_control", "mgg_inclusive"]
        assert output["metadata"]["systematics"] == "all"  # the fits carry every variation
    from ttH_adv.stats.compare import r50_at_flatness

    classifier = next(r for r in json.loads((tmp_path / "seed" / "results.json").read_text())["results"]
                      if r["method"] == "classifier")
    curve = [(p["ratio50"], p["r50"]) for p in classifier["metrics"]["ceiling_curve"]]
    for label in ("seed.ddt", "seed.classifier"):
        at = r50_at_flatness(curve, rows[label]["jsd50_over_floor"], clamp=True)
        assert rows[label]["r50_over_ceiling"] == pytest.approx(rows[label]["r50"] / at)
    assert rows["extended.adversarial_lam10"]["r50_over_ceiling"] is None and rows["seed.ddt"]["lambda"] is None
    assert "| adversarial | extended | 10 |" in (tmp_path / "compare" / "comparison.md").read_text()
    # the shared processor pass fills each model's categories exactly as a run with that model alone does
    # (the first and the last of the pass's models)
    for folder, label in (("seed", "seed.classifier"), ("extended", "extended.adversarial_lam10")):
        model = tmp_path / folder / "models" / f"{label.split('.', 1)[1]}.onnx"
        assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(tmp_path / "alone" / label),
                     "--model", str(model), "--categories", str(tmp_path / "compare" / label / "categories.json"),
                     "--systematics", "all"]) == 0
        alone, shared = (load_output(tmp_path / folder / label / "output.zip") for folder in ("alone", "compare"))
        assert alone["histograms"].keys() == shared["histograms"].keys()
        roles = shared["metadata"]["roles"]
        for name, h in alone["histograms"].items():
            other = shared["histograms"][name]
            for dataset in h.axes["dataset"]:
                # the shared pass varies the Higgs samples only: the continuum MC and data agree at nominal
                part = {"dataset": dataset} if roles[dataset] in ("signal", "resonant") else {
                    "dataset": dataset, "systematic": "nominal"}
                assert np.array_equal(h[part].values(), other[part].values()), (label, name, dataset)
                assert np.array_equal(h[part].variances(), other[part].variances()), (label, name, dataset)
