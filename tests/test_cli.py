"""The tth-adv command line and the import-cost contract."""

from __future__ import annotations

import subprocess
import sys

from ttH_adv.cli import main
from ttH_adv.manifest import load_manifest


def test_generate_then_summary(tmp_path, capsys):
    assert main(["--no-progress", "generate", "--out", str(tmp_path), "--events", "2000", "--seed", "5"]) == 0
    manifest = load_manifest(tmp_path / "datasets.json")
    assert set(manifest.datasets) >= {"data", "ttH", "ggH", "yyjets", "ttyy"}
    assert main(["summary", "--datasets", str(tmp_path / "datasets.json")]) == 0
    out = capsys.readouterr().out
    assert "ttH" in out and "signal" in out and "total" in out


def test_bad_input_exits_with_named_error(tmp_path, caplog):
    assert main(["summary", "--datasets", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in caplog.text


def test_help_is_readable():
    result = subprocess.run([sys.executable, "-m", "ttH_adv.cli", "--help"], capture_output=True, text=True,
                            check=True)
    for word in ("generate", "summary", "demo"):
        assert word in result.stdout


def test_library_and_processors_never_import_tensorflow():
    code = ("import sys, ttH_adv, processors, ttH_adv.cli, ttH_adv.generator, ttH_adv.schema, ttH_adv.manifest;"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
