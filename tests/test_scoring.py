"""The ONNX model scored inside the processors: same scores as offline, every executor, categories."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ttH_adv.config import with_categories  # noqa: E402
from ttH_adv.dump import read_dump  # noqa: E402
from ttH_adv.features import feature_matrix, feature_names  # noqa: E402
from ttH_adv.inference import OnnxScorer  # noqa: E402

from conftest import histogram_by_dataset, run  # noqa: E402


@pytest.fixture(scope="module")
def model_path(small_manifest, config, tmp_path_factory):
    """A tiny model trained on the small dataset's dump (seed features)."""
    from training.config import load_training_config
    from training.run import run_training

    folder = tmp_path_factory.mktemp("scoring")
    run(small_manifest, config, dump_dir=str(folder / "dump"))
    cfg = load_training_config(overrides={"classifier": {"layers": [16]}, "schedule": {"epochs": 2},
                                          "data": {"min_jets": 2}})
    run_training(folder / "dump", folder / "model", cfg, [("classifier", 0.0)])
    return str(folder / "model" / "model.onnx")


def test_scores_inside_the_processor_equal_offline_scores(small_manifest, config, model_path, tmp_path):
    run(small_manifest, config, model_path=model_path, dump_dir=str(tmp_path / "dump"), chunksize=4_000)
    table = read_dump(tmp_path / "dump").to_pandas()
    in_channel = table.channel != "none"
    assert np.isnan(table.score[~in_channel]).all()  # never categorised, so never scored
    table = table[in_channel]
    assert table.score.between(0, 1).all() and table.score.std() > 0
    offline = OnnxScorer(model_path)(feature_matrix({n: table[n].to_numpy() for n in feature_names("seed")}),
                                     table.eventNumber.to_numpy())
    assert np.allclose(offline, table.score.to_numpy(), atol=1e-6)


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


def test_categories_without_a_model_are_refused(small_manifest, config):
    from ttH_adv.errors import TthAdvError

    with pytest.raises(TthAdvError, match="no model"):
        run(small_manifest, with_categories(config, {"had": [0.5]}))
