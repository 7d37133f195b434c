"""Every bad-input path of a run: stop with the file named, or skip and record it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from ttH_adv.app.cli import main
from ttH_adv.config import load_config
from ttH_adv.errors import InputFileError, MissingBranchError, ProcessingError, TthAdvError
from ttH_adv.inputs.manifest import Manifest

from conftest import run
from helpers import empty_copy, truncated_copy, without_branch, write_manifest


def _with_extra_file(manifest: Manifest, dataset: str, path: Path) -> Manifest:
    info = manifest.datasets[dataset]
    files = {**info.files, str(path): "mini"}
    return Manifest(manifest.path, {dataset: dataclasses.replace(info, files=files)})


def _ttH_file(manifest):
    return next(iter(manifest.datasets["ttH"].files))


@pytest.fixture
def damaged(small_manifest, tmp_path):
    src = _ttH_file(small_manifest)
    return {
        "missing": (tmp_path / "gone.root", InputFileError, "not found"),
        "truncated": (truncated_copy(src, tmp_path / "cut.root", 0.5), InputFileError, "truncated"),
        "no_branch": (without_branch(src, tmp_path / "nojvt.root", "jet_jvt"), MissingBranchError, "jet_jvt"),
    }


@pytest.mark.parametrize("case", ["missing", "truncated", "no_branch"])
def test_bad_file_stops_the_run_and_is_named(small_manifest, config, damaged, case):
    path, error, words = damaged[case]
    manifest = _with_extra_file(small_manifest, "ttH", path)
    with pytest.raises(error) as err:
        run(manifest, config)
    assert str(path) in str(err.value) and words in str(err.value) and "ttH" in str(err.value)


@pytest.mark.parametrize("case", ["missing", "truncated", "no_branch"])
def test_skip_bad_files_records_them_and_processes_the_rest(small_manifest, config, damaged, case):
    path, _, words = damaged[case]
    good = Manifest(small_manifest.path, {"ttH": small_manifest.datasets["ttH"]})
    out = run(_with_extra_file(small_manifest, "ttH", path), config, skip_bad_files=True)
    reference = run(good, config)
    assert out["metadata"]["files_skipped"] == [{"dataset": "ttH", "file": str(path),
                                                  "reason": out["metadata"]["files_skipped"][0]["reason"]}]
    assert words in out["metadata"]["files_skipped"][0]["reason"]
    assert out["cutflow"] == reference["cutflow"]
    assert str(path) not in out["metadata"]["files_processed"]


def test_wrong_tree_name(small_manifest, config):
    info = small_manifest.datasets["ttH"]
    files = {f: "nominal" for f in info.files}
    manifest = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files=files)})
    with pytest.raises(InputFileError, match="has no tree 'nominal'"):
        run(manifest, config)


def test_empty_tree_gives_valid_empty_output(small_manifest, config, tmp_path):
    empty = empty_copy(_ttH_file(small_manifest), tmp_path / "empty.root")
    info = small_manifest.datasets["ttH"]
    manifest = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={str(empty): "mini"})})
    out = run(manifest, config)
    assert out["cutflow"]["ttH"]["all"]["events"] == 0
    assert out["histograms"]["mgg"].sum().value == 0
    assert list(out["histograms"]["mgg"].axes["dataset"]) == ["ttH"]


def test_all_files_skipped_gives_valid_empty_output(small_manifest, config, tmp_path):
    info = small_manifest.datasets["ttH"]
    manifest = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={str(tmp_path / "a.root"): "mini"})})
    out = run(manifest, config, skip_bad_files=True)
    assert len(out["metadata"]["files_skipped"]) == 1
    assert out["histograms"]["mgg"].values().sum() == 0


def test_chunk_where_nothing_passes(small_manifest, config, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text("photons: {pt_min: 5000.0}\n")
    out = run(Manifest(small_manifest.path, {"ttH": small_manifest.datasets["ttH"]}), load_config(strict),
              chunksize=2_000, dump_dir=str(tmp_path / "dump"))
    cutflow = out["cutflow"]["ttH"]
    assert cutflow["trigger"]["events"] > 0 and cutflow["two_photons"]["events"] == 0
    assert np.all(out["histograms"]["mgg"].values() == 0)


@pytest.mark.parametrize(("skip_bad_files", "executor"), [(False, "iterative"), (True, "futures")])
def test_corruption_found_while_reading_stops_with_the_file_named(small_manifest, config, tmp_path, skip_bad_files,
                                                                   executor):
    """The pre-flight check cannot see a damaged basket: the run stops, with or without --skip-bad-files
    (never a silent partial result), naming the file and the entry range."""
    src = Path(_ttH_file(small_manifest))
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(4000)  # zero a stretch of compressed baskets
    broken = tmp_path / "zeroed.root"
    broken.write_bytes(bytes(data))
    info = small_manifest.datasets["ttH"]
    manifest = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={str(broken): "mini"})})
    with pytest.raises(ProcessingError) as err:
        run(manifest, config, skip_bad_files=skip_bad_files, executor=executor)
    message = str(err.value)
    assert re.fullmatch(rf"processing stopped: dataset 'ttH', file {re.escape(str(broken))}, entries \d+-\d+: "
                        r"\w+: .*", message), message
    assert "\n" not in message and "branch_map" not in message and len(message) < 300  # one line, no work-item dump


def test_files_checked_on_dask_workers_report_the_same(small_manifest, config, damaged):
    """With Dask the file checks run on the workers: a bad file's error comes back whole (type, file, dataset)."""
    path, error, words = damaged["no_branch"]
    manifest = _with_extra_file(small_manifest, "ttH", path)
    with pytest.raises(error) as err:
        run(manifest, config, executor="dask", workers=2)
    assert err.value.path == str(path) and err.value.dataset == "ttH" and words in str(err.value)
    out = run(manifest, config, executor="dask", workers=2, skip_bad_files=True)
    assert [s["file"] for s in out["metadata"]["files_skipped"]] == [str(path)]


def test_unknown_worker_start_is_refused(small_manifest, config, tmp_path):
    with pytest.raises(TthAdvError, match="--worker-start must be one of"):
        run(small_manifest, config, executor="dask", workers=1, worker_start="threads")
    with pytest.raises(SystemExit):  # plain fork is not offered (see processors.workers)
        main(["run", "--datasets", str(small_manifest.path), "--out", str(tmp_path / "o"), "--executor", "dask",
              "--worker-start", "fork"])


def test_cli_names_the_bad_file(small_manifest, damaged, tmp_path, caplog, capsys):
    path, _, _ = damaged["truncated"]
    manifest = _with_extra_file(small_manifest, "ttH", path)
    manifest_path = write_manifest(manifest, tmp_path / "datasets.json")
    assert main(["--no-progress", "run", "--datasets", str(manifest_path), "--out", str(tmp_path / "o")]) == 2
    assert "cut.root" in caplog.text
    assert main(["--no-progress", "run", "--datasets", str(manifest_path), "--out", str(tmp_path / "o"),
                 "--skip-bad-files"]) == 0
    assert "SKIPPED 1 bad file" in capsys.readouterr().out


def test_object_systematic_branches_are_needed_only_for_object_systematics(small_manifest, config, tmp_path, caplog):
    """A file without the *_pt_syst branches runs nominal (noted in one line and in the output); asking for
    object systematics on it stops the run naming the file and the branches."""
    src = _ttH_file(small_manifest)
    path = tmp_path / "nosyst.root"
    without_branch(src, tmp_path / "a.root", "photon_pt_syst")
    without_branch(tmp_path / "a.root", tmp_path / "b.root", "jet_pt_syst")
    without_branch(tmp_path / "b.root", tmp_path / "c.root", "lep_pt_syst")
    without_branch(tmp_path / "c.root", path, "met_et_syst")
    info = small_manifest.datasets["ttH"]
    manifest = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={str(path): "mini"})})
    reference = Manifest(small_manifest.path, {"ttH": dataclasses.replace(info, files={src: "mini"})})
    with caplog.at_level("INFO"):
        out = run(manifest, config)
    assert out["cutflow"] == run(reference, config)["cutflow"]
    assert out["metadata"]["files_without_systematic_branches"] == [str(path)]
    notes = [r.getMessage() for r in caplog.records if "object-systematic branches" in r.getMessage()]
    assert len(notes) == 1 and "nosyst.root" in notes[0]
    assert len(run(manifest, config, systematics="weights")["histograms"]["mgg"].axes["systematic"]) > 1
    with pytest.raises(MissingBranchError, match=r"nosyst\.root.*photon_pt_syst"):
        run(manifest, config, systematics="all")
