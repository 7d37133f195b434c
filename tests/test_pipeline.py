"""The demo pipeline: stages run once, are reused, and rerun when their inputs change."""

from __future__ import annotations

import json

from ttH_adv.cli import main
from ttH_adv.pipeline import Stage, run_stages


def test_stages_reuse_and_rerun_on_changed_input(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("a")
    target = tmp_path / "output.txt"
    calls = []

    def build():
        calls.append(1)
        target.write_text(source.read_text().upper())

    def stages(param):
        return [Stage("upper", {"p": param}, [source], [target], build)]

    assert run_stages(tmp_path, stages(1)) == {"upper": "ran"}
    assert run_stages(tmp_path, stages(1)) == {"upper": "reused"}
    source.write_text("bb")  # changed input
    assert run_stages(tmp_path, stages(1)) == {"upper": "ran"} and target.read_text() == "BB"
    assert run_stages(tmp_path, stages(2)) == {"upper": "ran"}  # changed parameter
    target.unlink()  # missing output
    assert run_stages(tmp_path, stages(2)) == {"upper": "ran"}
    assert len(calls) == 4


def test_demo_runs_end_to_end_and_continues(tmp_path, capsys):
    """The README's main command on a reduced size: every stage, then a rerun that reuses them."""
    import pytest

    pytest.importorskip("tensorflow")
    args = ["--no-progress", "demo", "--out", str(tmp_path), "--events", "300000", "--quick"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "combined" in out and "adversarial" in out and "report:" in out and "unconstrained classifier" in out
    for produced in ("ntuples/datasets.json", "model/model.onnx", "model/out_of_fold.parquet", "model/results.json",
                     "categories.json", "categories_unconstrained.json", "histograms/output.coffea",
                     "fits/fits.json", "fits/workspace.json", "fits_unconstrained/fits.json", "report/report.md",
                     "report/pareto.png", "report/sculpting.png"):
        assert (tmp_path / produced).is_file(), produced
    manifest = json.loads((tmp_path / "ntuples" / "datasets.json").read_text())
    assert manifest["yyjets"]["metadata"]["n_events"] == 2 * round(300_000 * 0.15)  # oversampled continuum MC
    for folder in ("fits", "fits_unconstrained"):
        fit = json.loads((tmp_path / folder / "fits.json").read_text())
        assert {c["category"] for c in fit["categories"]} == {"had_1", "had_2", "lep_1"}
        for record in fit["categories"]:
            assert {"chosen_family", "spurious_signal", "sideband_fits", "template"} <= set(record)
            assert {"family", "passed", "delta_mc"} <= set(record["spurious_signal"][0])
        fitted = [c["category"] for c in fit["categories"] if c["chosen_family"]]
        assert sorted(fitted + fit["without_function"]) == ["had_1", "had_2", "lep_1"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| category | model | function |" in report and "| unconstrained |" in report
    assert "## Contents" in report and "| category | S (window) |" in report and "```" not in report  # rendered tables
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert len(pngs) >= 6 and all(p.with_suffix(".pdf").is_file() for p in pngs)
    records = {p.stem for p in (tmp_path / ".stages").glob("*.json")}
    assert records == {"generate", "process", "train", "score", "categorize", "categories", "fit", "report",
                       "score_unconstrained", "categorize_unconstrained", "categories_unconstrained",
                       "fit_unconstrained"}
    mtimes = {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
    assert main(args) == 0  # second run reuses every stage
    assert mtimes == {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
