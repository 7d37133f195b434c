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


def _command_functions() -> dict:
    """Every function a subcommand runs (``set_defaults(func=...)``), by name."""
    import argparse

    from ttH_adv.app.cli import build_parser

    found = {}

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if sub.get_default("func") is not None:
                        found[sub.get_default("func").__name__] = sub.get_default("func")
                    walk(sub)

    walk(build_parser())
    return found


def test_every_command_is_one_stage_call_and_printing():
    """parse -> one function of ttH_adv.app.stages (or the demo's) -> print: a command imports nothing else from
    the package but functions that turn a result into text (they return str or list[str])."""
    import ast
    import importlib
    import inspect
    import textwrap

    from ttH_adv.app import demo, stages

    layer = {"stages": stages, "demo": demo}

    commands = _command_functions()
    assert len(commands) == 14, sorted(commands)  # 13 commands, condor with two actions
    for name, func in commands.items():
        body = ast.parse(textwrap.dedent(inspect.getsource(func)))
        stage_calls = [(node.func.value.id, node.func.attr) for node in ast.walk(body) if isinstance(node, ast.Call)
                       and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                       and node.func.value.id in layer]
        assert len(stage_calls) == 1, (name, stage_calls)
        module, stage = stage_calls[0]
        assert callable(getattr(layer[module], stage, None)), (name, stage_calls)
        for node in ast.walk(body):
            if isinstance(node, ast.ImportFrom) and not {a.name for a in node.names} <= set(layer):
                module = importlib.import_module("." * node.level + (node.module or ""), "ttH_adv.app")
                for alias in node.names:
                    returns = inspect.signature(getattr(module, alias.name)).return_annotation
                    assert returns in ("str", "list[str]"), f"{name} imports {alias.name}, which is no text function"
