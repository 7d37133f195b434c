"""The bad-input matrix: every command, every class of bad input -> exit 2, one line naming it, nothing written.

Each case is a row of docs/failures.md (``python tests/test_failures.py`` rewrites it from CASES; a test
checks that it is current).  A case gives the command line (paths as {placeholders} of
the ``world`` fixture), the text the one error line must contain, and the path the command would
have written, which must not appear (or, where it existed, must be left as it was).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

from ttH_adv.app.cli import main
from ttH_adv.inference import KEY_FEATURE_SET_VERSION, REQUIRED_KEYS
from ttH_adv.inputs.manifest import Manifest
from ttH_adv.output import save_output

from conftest import run
from helpers import truncated_copy, without_branch, write_manifest, write_tree

# (id, command line, text the error names, what the command would write)
CASES = [
    ("generate-bad-format", "generate --out {out} --events 100 --format opendata2099", "opendata2099", "{out}"),
    ("generate-unknown-sample", "generate --out {out} --events 100 --samples nosuch", "nosuch", "{out}"),
    ("manifest-missing-path", "manifest {missing} --out {out}/m.json", "missing", "{out}"),
    ("manifest-empty-folder", "manifest {empty} --out {out}/m.json", "empty", "{out}"),
    ("manifest-not-root", "manifest {text_root} --out {out}/m.json", "text.root", "{out}"),
    ("manifest-truncated", "manifest {truncated} --out {out}/m.json --luminosity-pb 1000", "truncated", "{out}"),
    ("manifest-no-tree", "manifest {no_tree} --out {out}/m.json --luminosity-pb 1000", "no_tree.root", "{out}"),
    ("manifest-file-without-branch", "manifest {no_branch} --out {out}/m.json --luminosity-pb 1000 --format opendata2020",
     "photon_isTightID", "{out}"),
    ("manifest-negative-luminosity", "manifest {tth_file} --out {out}/m.json --luminosity-pb -5", "--luminosity-pb",
     "{out}"),
    ("manifest-unknown-format", "manifest {tth_file} --out {out}/m.json --format nosuchformat", "nosuchformat",
     "{out}"),
    ("manifest-malformed-xsec", "manifest {tth_file} --out {out}/m.json --xsec 346343", "--xsec", "{out}"),
    ("manifest-malformed-role", "manifest {tth_file} --out {out}/m.json --role 346343", "--role", "{out}"),
    ("manifest-malformed-catalogue", "manifest {tth_file} --out {out}/m.json --catalogue {bad_yaml}", "bad.yaml",
     "{out}"),
    ("summary-missing", "summary --datasets {missing}/m.json", "m.json", None),
    ("summary-malformed-json", "summary --datasets {bad_json}", "bad.json", None),
    ("summary-incomplete-manifest", "summary --datasets {no_xsec_manifest}", "xsec_pb", None),
    ("run-missing-manifest", "run --datasets {missing}/m.json --out {out}", "m.json", "{out}"),
    ("run-truncated-file", "run --datasets {truncated_manifest} --out {out}", "truncated", "{out}"),
    ("run-file-without-tree", "run --datasets {no_tree_manifest} --out {out}", "no_tree.root", "{out}"),
    ("run-file-without-branch", "run --datasets {no_branch_manifest} --out {out}", "photon_isTightID", "{out}"),
    ("run-malformed-config", "run --datasets {manifest} --out {out} --config {bad_yaml}", "bad.yaml", "{out}"),
    ("run-unknown-config-key", "run --datasets {manifest} --out {out} --config {unknown_key}", "bogus", "{out}"),
    ("run-no-workers", "run --datasets {manifest} --out {out} --executor futures --workers 0", "--workers", "{out}"),
    ("run-categories-not-categories", "run --datasets {manifest} --out {out} --categories {manifest}",
     "datasets.json", "{out}"),
    ("run-unknown-executor", "run --datasets {manifest} --out {out} --executor threads", "--executor", "{out}"),
    ("run-unknown-systematics", "run --datasets {manifest} --out {out} --systematics most", "--systematics", "{out}"),
    ("run-model-of-other-features", "run --datasets {manifest} --out {out} --model {other_model}", "other.onnx",
     "{out}"),
    ("run-missing-model", "run --datasets {manifest} --out {out} --model {missing}/m.onnx", "m.onnx", "{out}"),
    ("run-not-a-model", "run --datasets {manifest} --out {out} --model {text_root}", "text.root", "{out}"),
    ("run-missing-categories", "run --datasets {manifest} --out {out} --categories {missing}/c.json", "c.json",
     "{out}"),
    ("run-old-output-name", "run --datasets {manifest} --out {out}/o.coffea", "o.coffea", "{out}"),
    ("export-root-missing", "export-root --input {missing} --out {out}/h.root", "missing", "{out}"),
    ("export-root-not-an-output", "export-root --input {text_zip} --out {out}/h.root", "text.zip", "{out}"),
    ("train-empty-dump", "train --features {empty} --out {out}", "empty", "{out}"),
    ("train-missing-dump", "train --features {missing} --out {out}", "missing", "{out}"),
    ("train-unknown-config-key", "train --features {dump} --out {out} --config {unknown_key}", "bogus", "{out}"),
    ("train-malformed-config", "train --features {dump} --out {out} --config {bad_yaml}", "bad.yaml", "{out}"),
    ("train-unknown-feature-set", "train --features {dump} --out {out} --feature-set tracks", "tracks", "{out}"),
    ("train-unknown-method", "train --features {dump} --out {out} --method adversarail", "adversarail", "{out}"),
    ("train-no-seeds", "train --features {dump} --out {out} --seeds 0", "--seeds", "{out}"),
    ("train-disagreeing-config", "train --features {dump} --out {out} --analysis-config {other_window}",
     "mass.blind_high", "{out}"),
    ("categorize-empty-dump", "categorize --features {empty} --out {out}/c.json", "empty", "{out}"),
    ("categorize-missing-dump", "categorize --features {missing} --out {out}/c.json", "missing", "{out}"),
    ("categorize-disagreeing-config", "categorize --features {dump} --out {out}/c.json --config {other_window}",
     "mass.blind_high", "{out}"),
    ("categorize-unscored-dump", "categorize --features {dump} --out {out}/c.json", "score", "{out}"),
    ("fit-not-an-output", "fit --histograms {text_zip} --out {out}", "text.zip", "{out}"),
    ("fit-missing-output", "fit --histograms {missing} --out {out}", "missing", "{out}"),
    ("fit-truncated-output", "fit --histograms {truncated_zip} --out {out}", "cut.zip", "{out}"),
    ("fit-disagreeing-config", "fit --histograms {hist} --out {out} --config {other_window}", "mass.blind_high",
     "{out}"),
    ("fit-malformed-config", "fit --histograms {hist} --out {out} --config {bad_yaml}", "bad.yaml", "{out}"),
    ("fit-keeps-the-previous-fits", "fit --histograms {text_zip} --out {previous_fits}", "text.zip",
     "{previous_fits}/fits.json"),
    ("condor-submit-missing-manifest", "condor submit --datasets {missing}/m.json --jobs 2 --out {out} --dry-run",
     "m.json", "{out}"),
    ("condor-submit-no-jobs", "condor submit --datasets {manifest} --jobs 0 --out {out} --dry-run", "--jobs",
     "{out}"),
    ("condor-job-missing-plan", "condor job --plan {missing}/plan.json --slice 0 --out {out}/p.zip", "plan.json",
     "{out}"),
    ("merge-missing-plan", "merge --plan {missing}/plan.json --partials {empty} --out {out}", "plan.json", "{out}"),
    ("compare-not-a-training-folder", "compare --datasets {manifest} --models {empty} --out {out}", "empty",
     "{out}"),
    ("report-unpaired-inputs", "report --histograms {hist} --fits {empty} {empty} --out {out}", "--fits", "{out}"),
    ("report-fits-of-another-version", "report --histograms {hist} --fits {old_fits} --out {out}",
     "data_ti_sideband", "{out}"),
    ("demo-unknown-format", "demo --out {out} --format opendata2099 --quick", "opendata2099", "{out}"),
    ("demo-unknown-executor", "demo --out {out} --executor threads --quick", "--executor", "{out}"),
]


def _other_model(path):
    """A real ONNX model with the project's metadata, trained on features the analysis does not have."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ReduceMean", ["features"], ["score"], keepdims=0)], "other",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    values = {k: "{}" for k in REQUIRED_KEYS}
    values.update({"ttH_adv.event.features": json.dumps(["track_pt", "track_eta"]), "ttH_adv.feature_set": "seed",
                   KEY_FEATURE_SET_VERSION: "seed-v1", "ttH_adv.method": "classifier", "ttH_adv.lambda": "0",
                   "ttH_adv.folds": json.dumps({"n_folds": 1})})
    helper.set_model_props(model, values)
    onnx.save(model, str(path))
    return path


def _manifest_with(small_manifest, tmp, name, path, tree="mini"):
    """The small manifest's ttH dataset with only ``path`` as its file."""
    info = small_manifest.datasets["ttH"]
    return write_manifest(Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={str(path): tree})}),
                          tmp / f"{name}.json")


@pytest.fixture(scope="module")
def world(small_manifest, config, tmp_path_factory):
    """Good inputs (a manifest, a run's output and dump) and one bad input of each class."""
    tmp = tmp_path_factory.mktemp("failures")
    tth = next(iter(small_manifest.datasets["ttH"].files))
    (tmp / "empty").mkdir()
    (tmp / "text.root").write_text("not a ROOT file\n")
    (tmp / "text.zip").write_text("not an output\n")
    (tmp / "bad.yaml").write_text("mass: [unclosed\n")
    (tmp / "bad.json").write_text("{\"ttH\": \n")
    (tmp / "unknown_key.yaml").write_text("bogus: 1\n")
    (tmp / "other_window.yaml").write_text("mass: {signal_scan: [122.0, 128.0], blind_high: 128.0}\n")
    entry = json.loads(small_manifest.path.read_text())["ttH"]
    entry["metadata"].pop("xsec_pb")
    no_xsec = small_manifest.path.with_name("no_xsec.json")  # beside the good one: its relative paths resolve
    no_xsec.write_text(json.dumps({"ttH": entry}))
    (tmp / "truncated").mkdir()
    truncated = truncated_copy(tth, tmp / "truncated" / "mc_346343.ttH.GamGam.root", 0.5)
    no_tree = write_tree(tmp / "no_tree.root", {"x": np.array([1.0, 2.0])}, tree="other")
    no_branch = without_branch(tth, tmp / "no_branch.root", "photon_isTightID")
    output = run(small_manifest, config, dump_dir=str(tmp / "dump"))
    hist = save_output(output, tmp / "hist" / "output.zip")
    cut = tmp / "cut.zip"
    cut.write_bytes(hist.read_bytes()[: hist.stat().st_size // 2])
    (tmp / "previous_fits").mkdir()
    (tmp / "previous_fits" / "fits.json").write_text("{\"previous\": true}\n")
    (tmp / "old_fits").mkdir()  # a category record without a key this version's fits have
    (tmp / "old_fits" / "fits.json").write_text(json.dumps({"categories": [{"category": "had_1"}], "combined": None}))
    return {
        "tmp": tmp, "out": tmp / "out", "missing": tmp / "missing", "empty": tmp / "empty",
        "text_root": tmp / "text.root", "text_zip": tmp / "text.zip", "bad_yaml": tmp / "bad.yaml",
        "bad_json": tmp / "bad.json", "unknown_key": tmp / "unknown_key.yaml", "other_window": tmp / "other_window.yaml",
        "no_xsec_manifest": no_xsec, "truncated": truncated, "no_tree": no_tree, "tth_file": tth,
        "manifest": small_manifest.path, "truncated_manifest": _manifest_with(small_manifest, tmp, "t", truncated),
        "no_tree_manifest": _manifest_with(small_manifest, tmp, "nt", no_tree),
        "no_branch_manifest": _manifest_with(small_manifest, tmp, "nb", no_branch), "no_branch": no_branch,
        "other_model": _other_model(tmp / "other.onnx"), "hist": hist.parent, "dump": tmp / "dump",
        "truncated_zip": cut, "previous_fits": tmp / "previous_fits", "old_fits": tmp / "old_fits",
    }


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(case, world, caplog, capsys):
    name, command, named, writes = case
    world = {**world, "out": world["tmp"] / "out" / name}  # each case its own: one that writes fails alone
    argv = ["--no-progress", *(part.format(**world) for part in command.split())]
    target = writes and type(world["tmp"])(writes.format(**world))
    before = target.read_bytes() if target and target.is_file() else None
    caplog.clear()
    caplog.set_level(logging.INFO)
    try:
        code = main(argv)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    except SystemExit as exc:  # argparse's own one line for an option value it does not accept
        code = exc.code
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 2, errors
    assert len(errors) == 1, errors
    assert len(errors[0]) <= 300 and "\n" not in errors[0] and named in errors[0], errors[0]
    if before is not None:
        assert target.read_bytes() == before  # left as it was
    elif target is not None:
        assert not target.exists()
    if writes == "{out}":
        assert not world["out"].exists()


FAILURES_PAGE = __import__("pathlib").Path(__file__).parent.parent / "docs" / "failures.md"


def failure_table() -> str:
    """docs/failures.md: the cases above as a table."""
    lines = ["# What a bad input gets", "",
             "Every command given a bad input stops with exit code 2 and one line (at most 300 characters) that",
             "names the file, branch, sample, option or key, writes nothing and leaves an existing output as it",
             "was. A bug, an exception the project does not expect, still shows its traceback (exit 1), so that it",
             "can be reported. `tests/test_failures.py` runs every row below; it writes this page",
             "(`python tests/test_failures.py`).", "",
             "| case | command | the error names |", "|---|---|---|"]
    for name, command, named, _ in CASES:
        shown = command.replace("{", "").replace("}", "").replace("|", "\\|")
        lines.append(f"| {name} | `tth-adv {shown}` | {named} |")
    return "\n".join(lines) + "\n"


def test_the_failure_table_lists_every_case():
    assert FAILURES_PAGE.read_text() == failure_table(), "run python tests/test_failures.py"


if __name__ == "__main__":
    FAILURES_PAGE.parent.mkdir(exist_ok=True)
    FAILURES_PAGE.write_text(failure_table())
    print(f"wrote {FAILURES_PAGE} ({len(CASES)} cases)")
