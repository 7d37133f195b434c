"""Out-of-fold scoring end to end: training's out-of-fold scores are what the processor writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from ttH_adv.app.cli import main  # noqa: E402
from ttH_adv.dump import read_dump  # noqa: E402


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory):
    """The documented recipe on the 60k-event dataset: dump, adversarial lambda 10, 2 epochs, 32x32."""
    folder = tmp_path_factory.mktemp("oof")
    manifest = str(dataset_dir / "datasets.json")
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(folder / "plain"),
                 "--dump-features", str(folder / "features")]) == 0
    assert main(["--no-progress", "train", "--features", str(folder / "features"), "--out", str(folder / "model"),
                 "--method", "adversarial", "--lambda", "10", "--epochs", "2", "--layers", "32", "32",
                 "--all-events"]) == 0
    return folder, manifest


def _scored(folder, manifest, model, name):
    assert main(["--no-progress", "run", "--datasets", manifest, "--out", str(folder / name), "--model", str(model),
                 "--dump-features", str(folder / name / "dump"), "--executor", "futures", "--chunksize", "7000",
                 "--exact-chunks"]) == 0
    table = read_dump(folder / name / "dump", columns=["dataset", "eventNumber", "score", "systematic", "channel",
                                                      "control"])
    table = table.to_pandas()
    return table[table.systematic == "nominal"]


def test_processor_reproduces_trainings_out_of_fold_scores(trained):
    folder, manifest = trained
    oof = pd.read_parquet(folder / "model" / "out_of_fold.parquet")
    assert list(oof.columns) == ["dataset", "eventNumber", "score"]
    assert set(oof.dataset) == {"ttH", "data"} and len(oof) > 1000
    assert not oof.duplicated(["dataset", "eventNumber"]).any()
    scored = _scored(folder, manifest, folder / "model" / "model.onnx", "kfold")
    joined = oof.merge(scored, on=["dataset", "eventNumber"], suffixes=("_training", "_processor"))
    assert len(joined) == len(oof)  # every training event passed the processor's selection
    # Only events in a channel or a template control selection are scored (the others are never categorised):
    # exactly those carry a score, and it is the training's out-of-fold score.
    # Every training event (>= 3 jets) is in the had or lep channel or in one's control selection (b-tags relaxed).
    categorised = (joined.channel != "none") | (joined.control != "none")
    assert (joined.control != "none").sum() > 100 and categorised.all()
    assert np.max(np.abs(joined.score_training - joined.score_processor)) < 1e-5
    in_any = (scored.channel != "none") | (scored.control != "none")
    assert (~in_any).sum() > 500 and np.isnan(scored.score[~in_any]).all() and np.isfinite(scored.score[in_any]).all()
    summary = json.loads((folder / "model" / "results.json").read_text())
    assert summary["results"][0]["metrics"]["jsd_binning"] == "105-160 GeV, 55 bins"


def test_all_events_model_is_marked_and_differs_from_out_of_fold(trained):
    """The explicit all-events model scores training events in-sample: the output says so."""
    from ttH_adv.output import load_output

    folder, manifest = trained
    oof = pd.read_parquet(folder / "model" / "out_of_fold.parquet")
    scored = _scored(folder, manifest, folder / "model" / "model_all_events.onnx", "all_events")
    joined = oof.merge(scored, on=["dataset", "eventNumber"], suffixes=("_training", "_processor")).dropna()
    assert np.max(np.abs(joined.score_training - joined.score_processor)) > 1e-3  # not the out-of-fold scores
    model = load_output(folder / "all_events" / "output.zip")["metadata"]["model"]
    assert model["n_folds"] == 1 and model["scores"] == "in-sample for data, ttH"
    kfold = load_output(folder / "kfold" / "output.zip")["metadata"]["model"]
    assert kfold["n_folds"] == 2 and kfold["scores"] == "out-of-fold"
