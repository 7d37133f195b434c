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
    args = ["--no-progress", "demo", "--out", str(tmp_path), "--events", "20000", "--executor", "iterative"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ttH" in out and "TI_had" in out
    assert (tmp_path / "histograms" / "output.coffea").is_file()
    assert any((tmp_path / "features").rglob("*.parquet"))
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / ".stages").glob("*.json")}
    assert set(records) >= {"generate", "process"}
    assert main(args) == 0  # second run reuses every stage
    mtimes = {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
    assert main(args) == 0
    assert mtimes == {p.stem: p.stat().st_mtime_ns for p in (tmp_path / ".stages").glob("*.json")}
