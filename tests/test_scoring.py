"""The ONNX model scored inside the processors: same scores as offline, every executor, categories."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ttH_adv.config import with_categories  # noqa: E402
from ttH_adv.dump import read_dump  # noqa: E402
from ttH_adv.event.features import feature_matrix, feature_names  # noqa: E402
from ttH_adv.inference import OnnxScorer  # noqa: E402

from conftest import histogram_by_dataset, run  # noqa: E402


@pytest.fixture(scope="module")
def trained(small_manifest, config, tmp_path_factory):
    """A tiny model trained on the small dataset's dump (seed features), with its int8 export."""
    from training.config import load_training_config
    from training.run import run_training

    folder = tmp_path_factory.mktemp("scoring")
    run(small_manifest, config, dump_dir=str(folder / "dump"))
    cfg = load_training_config(overrides={"classifier": {"layers": [16]}, "schedule": {"epochs": 2},
                                          "data": {"min_jets": 2}})
    summary = run_training(folder / "dump", folder / "model", cfg, [("classifier", 0.0)], config, int8=True)
    return folder, cfg, summary


@pytest.fixture(scope="module")
def model_path(trained):
    return str(trained[0] / "model" / "model.onnx")


def test_int8_model_is_calibrated_checked_and_recorded(small_manifest, config, trained, tmp_path):
    """train --int8: static int8 (QDQ) export whose parity, R50 and JSD against the float model are recorded."""
    import onnx

    from ttH_adv.inference import KEY_QUANTISATION, load_model_info

    folder, _, summary = trained
    int8_path = folder / "model" / "model_int8.onnx"
    ops = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # int8 tensors in the graph
    report = json.loads(load_model_info(int8_path).metadata[KEY_QUANTISATION])
    assert report == json.loads(json.dumps(summary.int8))  # the same record in results.json and the model
    assert report["calibration_events"] > 1000 and report["float_model"]["sha256"]
    parity = report["parity"]
    assert 0 < parity["p99_abs_difference"] <= parity["p99_limit"] and parity["max_abs_difference"] < 0.1
    assert abs(report["int8"]["r50"] / report["float"]["r50"] - 1) < 0.1
    out = run(small_manifest, config, model_path=str(int8_path), dump_dir=str(tmp_path / "int8"))
    assert out["metadata"]["model"]["int8"]["kind"].startswith("onnxruntime static int8")
    assert out["metadata"]["model"]["n_folds"] == 2  # still the k-fold graph: out-of-fold scores
    float_out = run(small_manifest, config, model_path=str(folder / "model" / "model.onnx"),
                    dump_dir=str(tmp_path / "float"))
    assert float_out["metadata"]["model"]["int8"] is None
    a = read_dump(tmp_path / "int8", columns=["dataset", "eventNumber", "systematic", "score"]).to_pandas()
    b = read_dump(tmp_path / "float", columns=["dataset", "eventNumber", "systematic", "score"]).to_pandas()
    joined = a.merge(b, on=["dataset", "eventNumber", "systematic"]).dropna()
    assert len(joined) > 100 and np.quantile(np.abs(joined.score_x - joined.score_y), 0.99) <= parity["p99_limit"]


def test_int8_model_that_misses_parity_is_refused(trained, config, tmp_path, monkeypatch):
    from training import quantize
    from training.data import load_training_data
    from ttH_adv.stats.metrics import mass_binning

    folder, cfg, _ = trained
    monkeypatch.setattr(quantize, "MAX_P99_DIFFERENCE", 1e-9)
    data = load_training_data(folder / "dump", cfg.data)
    with pytest.raises(quantize.QuantisationError, match="keep the float model"):
        quantize.quantize_model(folder / "model" / "model.onnx", tmp_path / "bad.onnx", data, mass_binning(config.mass))
    assert not (tmp_path / "bad.onnx").exists()  # never left where a run could pick it up
    # train --int8 goes on without it: the refusal and its figures are in results.json.
    from training.run import run_training

    summary = run_training(folder / "dump", tmp_path / "model", cfg, [("classifier", 0.0)], config, int8=True)
    assert "keep the float model" in summary.int8["refused"] and summary.int8["parity"]["p99_abs_difference"] > 0
    assert (tmp_path / "model" / "model.onnx").is_file() and not (tmp_path / "model" / "model_int8.onnx").exists()


def test_scores_inside_the_processor_equal_offline_scores(small_manifest, config, model_path, tmp_path):
    run(small_manifest, config, model_path=model_path, dump_dir=str(tmp_path / "dump"), chunksize=4_000)
    table = read_dump(tmp_path / "dump").to_pandas()
    in_channel, in_control = table.channel != "none", table.control != "none"
    assert not (in_channel & in_control).any() and in_control.sum() > 0.2 * in_channel.sum()
    assert np.isnan(table.score[~in_channel & ~in_control]).all()  # never categorised, so never scored
    table = table[in_channel | in_control]
    assert table.score.between(0, 1).all() and table.score.std() > 0
    offline = OnnxScorer(model_path)(feature_matrix({n: table[n].to_numpy() for n in feature_names("seed")}),
                                     table.eventNumber.to_numpy())
    assert np.allclose(offline, table.score.to_numpy(), atol=1e-6)


def _sessions_in_child(queue) -> None:
    from ttH_adv import inference

    queue.put(len(inference._SESSIONS))


def test_a_forked_worker_does_not_inherit_the_parents_onnx_sessions(model_path):
    """Dask's forked workers build their own sessions: a copied one would lack its thread pool."""
    import multiprocessing

    from ttH_adv import inference

    OnnxScorer(model_path)(np.zeros((2, len(feature_names("seed"))), np.float32), np.arange(2))
    assert len(inference._SESSIONS) >= 1
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_sessions_in_child, args=(queue,))
    child.start()
    assert queue.get(timeout=30) == 0
    child.join(30)
    assert child.exitcode == 0


def test_scoring_is_identical_on_every_executor(small_manifest, config, model_path):
    iterative = run(small_manifest, config, model_path=model_path, chunksize=5_000)
    futures = run(small_manifest, config, model_path=model_path, chunksize=3_000, executor="futures", workers=2)
    a, b = histogram_by_dataset(iterative), histogram_by_dataset(futures)
    for name in a:
        assert np.array_equal(a[name][0], b[name][0])
    assert iterative["metadata"]["model"]["sha256"] == futures["metadata"]["model"]["sha256"]


BOUNDARIES = {"had": [0.8, 0.5, 0.2], "lep": [0.6]}


def test_categories_follow_the_scores_and_boundaries_on_iterative_and_dask(small_manifest, config, model_path,
                                                                          tmp_path):
    categorised = with_categories(config, BOUNDARIES)
    iterative = run(small_manifest, categorised, model_path=model_path, dump_dir=str(tmp_path / "iterative"))
    dask = run(small_manifest, categorised, model_path=model_path, executor="dask", workers=2, chunksize=3_000,
               dump_dir=str(tmp_path / "dask"))
    a, b = histogram_by_dataset(iterative), histogram_by_dataset(dask)
    for name in a:
        assert np.array_equal(a[name][0], b[name][0]) and np.array_equal(a[name][1], b[name][1]), name
    h = iterative["histograms"]["mgg"]
    assert list(h.axes["category"]) == ["had_1", "had_2", "had_3", "lep_1"]
    table = read_dump(tmp_path / "iterative").to_pandas()
    table = table[table.systematic == "nominal"]
    for channel, bounds in BOUNDARIES.items():
        rows = table[table.channel == channel]
        labels = np.array([f"{channel}_{i + 1}" for i in range(len(bounds))] + ["none"])
        expected = labels[(rows.score.to_numpy()[:, None] < np.asarray(bounds)[None, :]).sum(axis=1)]
        assert np.array_equal(rows.category.to_numpy(), expected)  # every event where its score puts it
        counts = rows.category.value_counts()
        assert all(counts.get(label, 0) > 0 for label in labels)  # no empty category, some left out
        in_channel = sum(c[f"{r}_{channel}"]["events"] for c in iterative["cutflow"].values() for r in ("TI", "NTNI"))
        assert counts.sum() == len(rows) == in_channel  # categorised plus left out: the channel's events
    # data are unweighted: each category's histogram counts its dump rows
    data = table[(table.dataset == "data") & (table.region == "TI")]
    for category in h.axes["category"]:
        filled = h[{"dataset": "data", "region": "TI", "category": category, "systematic": "nominal"}].sum().value
        assert filled == (data.category == category).sum()
    # the template control selections: events in no channel but in a channel's looser selection (no b-tag
    # required), scored and cut by the same boundaries, in their own histogram
    control = iterative["histograms"]["mgg_control"]
    assert list(control.axes["category"]) == list(h.axes["category"]) and list(control.axes["systematic"]) == [
        "nominal"]
    ntni = table[(table.dataset == "data") & (table.region == "NTNI") & (table.control != "none")]
    assert (ntni.channel == "none").all() and len(ntni) > 50
    for channel, bounds in BOUNDARIES.items():
        rows = ntni[ntni.control == channel]
        labels = np.array([f"{channel}_{i + 1}" for i in range(len(bounds))] + ["none"])
        expected = labels[(rows.score.to_numpy()[:, None] < np.asarray(bounds)[None, :]).sum(axis=1)]
        for category in labels[:-1]:
            filled = control[{"dataset": "data", "region": "NTNI", "category": category, "systematic": "nominal"}]
            assert filled.sum().value == (expected == category).sum(), category
    assert all(control[{"dataset": "data", "region": "NTNI", "category": f"had_{i}"}].sum().value > 0 for i in (1, 2, 3))


def test_categories_without_a_model_are_refused(small_manifest, config):
    from ttH_adv.errors import TthAdvError

    with pytest.raises(TthAdvError, match="no model"):
        run(small_manifest, with_categories(config, {"had": [0.5]}))


def test_a_multiclass_model_fills_every_class_probability_as_offline_scoring_gives(trained, small_manifest, config,
                                                                                   tmp_path):
    """A three-class network trained on the dump: the processor's score is its p_ttH, and its probabilities histogram
    holds each categorised event once per class, in the bin offline scoring puts it, through a save and a load."""
    from training.data import MULTICLASS_CLASSES
    from training.run import run_training
    from ttH_adv.output import PROBABILITY_HISTOGRAM, load_output, save_output

    folder, cfg, _ = trained
    summary = run_training(folder / "dump", tmp_path / "model", cfg, [("multiclass", 0.0)], config)
    samples = json.loads(OnnxScorer(tmp_path / "model" / "model.onnx").info.metadata["ttH_adv.training_samples"])
    assert samples["n_single_higgs"] > 0 and summary.results[0].metrics.r50_single_higgs > 1
    model = str(tmp_path / "model" / "model.onnx")
    categorised = with_categories(config, BOUNDARIES)
    out = run(small_manifest, categorised, model_path=model, dump_dir=str(tmp_path / "dump"))
    out = load_output(save_output(out, tmp_path / "output.zip"))
    h = out["histograms"][PROBABILITY_HISTOGRAM]
    assert list(h.axes["class"]) == list(MULTICLASS_CLASSES)
    dumped = read_dump(tmp_path / "dump").to_pandas()
    dumped = dumped[(dumped.systematic == "nominal") & (dumped.channel != "none")]
    table = dumped[(dumped.dataset == "data") & (dumped.category != "none")]
    scorer = OnnxScorer(model)
    score, probabilities = scorer.outputs(feature_matrix({n: table[n].to_numpy() for n in feature_names("seed")}),
                                          table.eventNumber.to_numpy())
    assert np.allclose(score, table.score.to_numpy(), atol=1e-6)
    # below a channel's last boundary, the events whose likeliest class is single Higgs form <channel>_H
    assert list(h.axes["category"]) == ["had_1", "had_2", "had_3", "had_H", "lep_1", "lep_H"]
    _, every = scorer.outputs(feature_matrix({n: dumped[n].to_numpy() for n in feature_names("seed")}),
                              dumped.eventNumber.to_numpy())
    last = dumped.channel.map({c: b[-1] for c, b in BOUNDARIES.items()}).to_numpy()
    single_higgs = (dumped.score.to_numpy() < last) & (np.argmax(every, axis=1) == MULTICLASS_CLASSES.index("single_higgs"))
    assert np.array_equal(dumped.category.str.endswith("_H").to_numpy(), single_higgs) and single_higgs.sum() > 10
    resonant = dumped[dumped.role == "resonant"]
    assert resonant.category.str.endswith("_H").mean() > dumped[dumped.role == "data"].category.str.endswith("_H").mean()
    edges = h.axes["probability"].edges
    for region in ("TI", "NTNI"):
        for category in h.axes["category"]:
            rows = ((table.region == region) & (table.category == category)).to_numpy()
            for k, name in enumerate(MULTICLASS_CLASSES):
                filled = h[{"dataset": "data", "region": region, "category": category, "class": name}].values()
                expected = np.histogram(np.clip(probabilities[rows, k], 0, 1 - 1e-9), edges)[0]
                assert np.array_equal(filled, expected), (region, category, name)
    assert h[{"dataset": "data"}].sum().value == 3 * len(table)
    import uproot

    from ttH_adv.output import export_root

    with uproot.open(export_root(out, tmp_path / "hists.root")) as f:
        written = f["probabilities/data/TI/had_1/ttH"].values()
    assert np.array_equal(written, h[{"dataset": "data", "region": "TI", "category": "had_1", "class": "ttH"}].values())
