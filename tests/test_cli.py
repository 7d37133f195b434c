"""The tth-adv command line and the import-cost contract."""

from __future__ import annotations

import subprocess
import sys

from ttH_adv.app.cli import main
from ttH_adv.inputs.manifest import load_manifest


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
    result = subprocess.run([sys.executable, "-m", "ttH_adv.app.cli", "--help"], capture_output=True, text=True,
                            check=True)
    for word in ("generate", "summary", "demo"):
        assert word in result.stdout


def test_library_and_processors_never_import_tensorflow():
    code = ("import importlib, pkgutil, sys, ttH_adv, processors\n"
            "for pkg in (ttH_adv, processors):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "assert 'ttH_adv.app.stages' in sys.modules and 'processors.tth' in sys.modules\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bad_training_request_is_refused_in_one_line_before_tensorflow_is_imported(tmp_path):
    """An unknown key, feature set or method: exit 2, one line naming it, and TensorFlow never imported."""
    (tmp_path / "bogus.yaml").write_text("bogus: 1\n")
    probe = ("import sys; from ttH_adv.app.cli import main; code = main(sys.argv[1:]); "
             "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(code)")
    base = ["train", "--features", str(tmp_path), "--out", str(tmp_path / "model")]
    for extra, named in ((["--config", str(tmp_path / "bogus.yaml")], "bogus"), (["--feature-set", "typo"], "typo"),
                         (["--method", "adversarail"], "adversarail")):
        result = subprocess.run([sys.executable, "-c", probe, *base, *extra], capture_output=True, text=True)
        errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
        assert result.returncode == 2 and result.stdout.strip() == "noTF", (extra, result.stderr)
        assert len(errors) == 1 and named in errors[0] and len(errors[0]) < 300 and "Traceback" not in result.stderr
        assert not (tmp_path / "model").exists()
