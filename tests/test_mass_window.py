"""One configuration: move the mass window and the photon pT cut in one file, and every stage follows."""

from __future__ import annotations

import numpy as np
import pytest

from ttH_adv.config import load_config
from ttH_adv.dump import read_dump
from ttH_adv.errors import ConfigError

from conftest import run

MOVED = """
mass:
  low: 100.0
  high: 170.0
  blind_low: 118.0
  blind_high: 132.0
  signal_scan: [120.0, 130.0]
photons:
  pt_min: 30.0
"""


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    path = tmp_path_factory.mktemp("window") / "moved.yaml"
    path.write_text(MOVED)
    return load_config(path)


def test_a_window_that_does_not_contain_its_blinding_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mass: {low: 100.0, high: 170.0, blind_low: 95.0}\n")
    with pytest.raises(ConfigError, match="low < blind_low"):
        load_config(bad)
    bad.write_text("mass: {jsd_bin_width: 0.7}\n")
    with pytest.raises(ConfigError, match="jsd_bin_width' must divide"):
        load_config(bad)


def test_every_stage_follows_the_moved_window(small_manifest, moved, tmp_path):
    pytest.importorskip("tensorflow")
    from training.config import load_training_config
    from training.run import run_training
    from ttH_adv.stats.categorize import categorize
    from ttH_adv.stats.fit_analysis import run_fits

    # processor: histogram axis, selection window and blinding
    output = run(small_manifest, moved, dump_dir=str(tmp_path / "dump"))
    edges = output["histograms"]["mgg"].axes["mgg"].edges
    assert (edges[0], edges[-1], len(edges) - 1) == (100.0, 170.0, 140)
    table = read_dump(tmp_path / "dump", columns=["mgg", "dataset", "region", "systematic", "photon2_pt"]).to_pandas()
    assert 30.0 <= table.photon2_pt.min() < 31.0  # the moved photon pT cut (the default is 25 GeV)
    assert table.mgg.min() < 105 and table.mgg.max() > 160  # events outside the default window are kept
    data_ti = table[(table.dataset == "data") & (table.region == "TI")]
    assert not data_ti.mgg.between(118, 132, inclusive="neither").any()  # blinded in the moved window
    assert data_ti.mgg.between(117, 118).any()  # ... and not outside it

    # training: the JSD figures are binned in the moved window
    cfg = load_training_config(overrides={"classifier": {"layers": [16]}, "schedule": {"epochs": 2},
                                          "data": {"min_jets": 2}})
    summary = run_training(tmp_path / "dump", tmp_path / "model", cfg, [("classifier", 0.0)], moved)
    assert summary.jsd_binning == "100-170 GeV, 70 bins"
    assert summary.results[0].metrics.extra["jsd_binning"] == "100-170 GeV, 70 bins"

    # categorize: the signal window and sidebands are the moved ones
    run(small_manifest, moved, dump_dir=str(tmp_path / "scored"), model_path=str(tmp_path / "model" / "model.onnx"))
    result = categorize(tmp_path / "scored", {"had": 1, "lep": 1}, moved.mass, min_sideband=1)
    default = categorize(tmp_path / "scored", {"had": 1, "lep": 1}, load_config().mass, min_sideband=1)
    scored = read_dump(tmp_path / "scored", columns=["mgg", "dataset", "region", "channel", "systematic"]).to_pandas()
    had_data = scored[(scored.dataset == "data") & (scored.region == "TI") & (scored.channel == "had")
                      & (scored.systematic == "nominal")].mgg.to_numpy()
    # the template is scaled to the moved sidebands' data: 100-118 and 132-170 GeV, not 105-120 and 130-160
    moved_sidebands = np.sum(~moved.mass.in_window(had_data) & (had_data >= 100) & (had_data < 170))
    assert sum(result.details["had"].sideband_events) <= moved_sidebands * 1.01
    assert result.details["had"].sideband_events != pytest.approx(default.details["had"].sideband_events, rel=0.02)

    # fits: sidebands, goodness-of-fit bins and spurious-signal scan in the moved window
    fits_result = run_fits(output, moved)
    conventions = fits_result.conventions
    assert conventions.mass_window == [100.0, 170.0] and conventions.blind_window == [118.0, 132.0]
    fitted = fits_result.fitted[0]
    # 2.5 GeV bins entirely outside 118-132: 7 below, 15 above; an exponential has 2 parameters
    assert fitted.sideband_fits["exponential"].ndf == 22 - 2
    scan = [point.m_H for point in fitted.spurious_signal[0].scan]
    assert scan == list(np.arange(120.0, 131.0))
    with pytest.raises(ConfigError, match="mass window is 105-160 GeV"):
        run_fits(output, load_config())  # histograms of another window are refused, not misread

    # report: the window it states and draws is the moved one
    from ttH_adv.app.stages import report

    text = report(tmp_path / "report", {"moved": (output, fits_result)}, None, None, moved).read_text()
    assert "m_yy fitted in 100-170 GeV with 118-132 GeV blinded" in text
