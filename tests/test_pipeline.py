"""The demo pipeline: stages run once, are reused, and rerun when their inputs change."""

from __future__ import annotations

import json

import pytest

from ttH_adv.app.cli import main
from ttH_adv.app.pipeline import Stage, run_stages


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


@pytest.mark.validation
def test_demo_runs_end_to_end_and_continues(tmp_path, capsys):
    """The README's main command on a reduced size: every stage, then a rerun that reuses them."""
    pytest.importorskip("tensorflow")
    args = ["--no-progress", "demo", "--out", str(tmp_path), "--events", "300000", "--quick"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "methods side by side" in out and "adversarial" in out and "report:" in out
    assert "unconstrained classifier" in out and "Best mean expected significance" in out
    seed_training = json.loads((tmp_path / "model" / "results.json").read_text())
    chosen = seed_training["lambda_choice"]["adversarial"]["chosen"]  # scanned on seed 1, chosen by the target
    assert [p["lambda"] for p in seed_training["lambda_choice"]["adversarial"]["scan"]] == [10.0, 30.0]
    assert seed_training["seeds"] == [1, 2]
    labels = [f"{name}_seed{seed}" for seed in (1, 2) for name in
              ("seed.classifier", f"seed.adversarial_lam{chosen:g}", "extended.classifier", "extended.drop-correlated",
               "extended.multiclass-adversarial_lam10")]
    produced = ["ntuples/datasets.json", "model/model.onnx", "model/out_of_fold.parquet", "model/results.json",
                "model_extended/results.json", "model_multiclass/results.json", "compare/comparison.md",
                "compare/comparison.json", "report/report.md", "report/pareto.png", "report/sculpting.png"]
    produced += [f"compare/{label}/{name}" for label in labels for name in
                 ("categories.json", "output.zip", "fits/fits.json", "fits/workspace.json")]
    for path in produced:
        assert (tmp_path / path).is_file(), path
    manifest = json.loads((tmp_path / "ntuples" / "datasets.json").read_text())
    assert manifest["yyjets"]["metadata"]["n_events"] == 2 * round(300_000 * 0.15)  # oversampled continuum MC
    comparison = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert sorted(r["label"] for r in comparison["rows"]) == sorted(labels)  # every seed at the chosen lambda
    assert {(r["feature_set"], r["method"]): len(r["seeds"]) for r in comparison["table"]} == {
        ("seed", "classifier"): 2, ("seed", "adversarial"): 2, ("extended", "classifier"): 2,
        ("extended", "drop-correlated"): 2, ("extended", "multiclass-adversarial"): 2}  # one row per method
    assert all(r["r50_over_ceiling"] is not None for r in comparison["table"])  # the ceiling in every row
    assert all(r["r50_single_higgs"]["mean"] > 1 for r in comparison["table"])  # single-Higgs rejection in every row
    for label in labels:
        fit = json.loads((tmp_path / "compare" / label / "fits" / "fits.json").read_text())
        # a multi-class model adds its single-Higgs control categories
        expected = ["had_1", "had_2", "lep_1"] if "multiclass" not in label else ["had_1", "had_2", "had_H", "lep_1",
                                                                                   "lep_H"]
        assert [c["category"] for c in fit["categories"]] == expected
        fitted = [c["category"] for c in fit["categories"] if c["chosen_family"]]
        assert fit["combined"]["categories"] == fitted and set(expected) - set(fitted) <= {"lep_H"}  # the headline
        for record in fit["categories"]:
            assert {"chosen_family", "spurious_signal", "sideband_fits", "template", "fallback"} <= set(record)
            assert {"family", "passed", "delta_mc"} <= set(record["spurious_signal"][0])
            assert record["modelling_uncertainty"]["source"] in ("spurious", "bias")
            assert {k for k, v in record["expected"].items() if v} == {"all_uncertainties", "statistical_only"}
            assert {"method", "effective_over_data", "closure_p_value"} <= set(record["template"])
            assert len(record["modifiers"]) >= 8  # the systematics reach every category
        first = label.endswith("_seed1")  # pyhf's cross-check and the impacts for each row's first seed
        assert bool(fit["pyhf"]) == first and bool(fit["combined"].get("impacts")) == first
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Methods side by side" in report and "| adversarial | seed |" in report
    assert "| category | model | function |" in report and "| unconstrained |" in report
    assert "## Template shapes" in report and "Impacts on μ" in report and "chosen on seed 1" in report
    assert "## Contents" in report and "| category | S (window) |" in report and "```" not in report  # rendered tables
    pngs = sorted((tmp_path / "report").glob("*.png"))
    assert len(pngs) >= 6 and all(p.with_suffix(".pdf").is_file() for p in pngs)
    records = {p.stem for p in (tmp_path / ".stages").glob("*.json")}
    assert records == {"generate", "process", "train", "compare_score", "compare_categorize", "compare_fill",
                       "compare_fit", "compare_table", "report"}
    mtimes = {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
    assert main(args) == 0  # second run reuses every stage
    assert mtimes == {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
