"""The saved output as an artifact: a safe file, the old one still read, its configuration carried downstream."""

from __future__ import annotations

import json
import logging

import pytest

from ttH_adv.app.cli import main
from ttH_adv.config import config_to_data, load_config
from ttH_adv.dump import dump_config
from ttH_adv.errors import InputFileError, TthAdvError
from ttH_adv.output import (
    METADATA_KEYS,
    carried_config,
    load_output,
    merge_outputs,
    output_path,
    save_output,
)

from conftest import histogram_by_dataset, run

MOVED = "mass: {low: 100.0, high: 170.0, blind_low: 118.0, blind_high: 132.0, signal_scan: [120.0, 130.0]}\n"


@pytest.fixture(scope="module")
def moved_run(small_manifest, tmp_path_factory):
    """A run (and its feature dump) made with a moved mass window, through the command line."""
    folder = tmp_path_factory.mktemp("moved")
    (folder / "moved.yaml").write_text(MOVED)
    assert main(["--no-progress", "run", "--datasets", str(small_manifest.path), "--config", str(folder / "moved.yaml"),
                 "--out", str(folder / "hist"), "--dump-features", str(folder / "dump")]) == 0
    return folder


def test_an_output_of_an_earlier_version_loads_only_when_allowed_and_with_a_warning(small_manifest, config, tmp_path, caplog):
    from coffea.util import save

    output = run(small_manifest.select(["ttH", "data"]), config)
    save(output, str(tmp_path / "output.coffea"))
    assert output_path(tmp_path) == tmp_path / "output.coffea"  # a folder holding only the old file
    with pytest.raises(InputFileError, match="a pickle, which runs whatever it holds.*--allow-pickle"):
        load_output(output_path(tmp_path))  # never unpickled unless asked
    assert main(["fit", "--histograms", str(tmp_path), "--out", str(tmp_path / "fits")]) == 2
    assert not (tmp_path / "fits").exists()
    caplog.set_level(logging.WARNING)
    old = load_output(output_path(tmp_path), allow_pickle=True)
    assert "earlier version" in caplog.text and "output.coffea" in caplog.text
    assert histogram_by_dataset(old).keys() == histogram_by_dataset(output).keys()
    assert old["cutflow"] == output["cutflow"]
    with pytest.raises(TthAdvError, match="saved as .zip"):
        output_path(tmp_path / "new.coffea", write=True)


@pytest.mark.parametrize("content", [b"not an output\n", b"PK\x03\x04 truncated zip", b""])
def test_a_file_that_is_not_an_output_is_named(tmp_path, content, caplog):
    path = tmp_path / "x.zip"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match="x.zip"):
        load_output(path)
    assert main(["fit", "--histograms", str(path), "--out", str(tmp_path / "fits")]) == 2
    assert "x.zip" in caplog.text and not (tmp_path / "fits").exists()


def test_every_output_has_the_same_metadata_keys(small_manifest, config, tmp_path):
    names = list(small_manifest.datasets)
    single = run(small_manifest, config)
    merged = merge_outputs([run(small_manifest.select(names[:4]), config), run(small_manifest.select(names[4:]), config)],
                           ["a", "b"])
    assert set(single["metadata"]) == set(merged["metadata"]) == set(METADATA_KEYS)
    for key in ("events_read", "objects", "entries_in_files", "roles", "luminosity_pb", "config", "config_hash"):
        assert merged["metadata"][key] == single["metadata"][key], key
    assert merged["metadata"]["merged_from"] == ["a", "b"]
    saved = load_output(save_output(merged, tmp_path / "merged.zip"))
    assert saved["metadata"] == json.loads(json.dumps(merged["metadata"]))


def test_outputs_of_different_configurations_do_not_merge(small_manifest, config, tmp_path):
    (tmp_path / "tight.yaml").write_text("photons: {pt_min: 30.0}\n")
    a = run(small_manifest.select(["ttH"]), config)
    b = run(small_manifest.select(["data"]), load_config(tmp_path / "tight.yaml"))
    with pytest.raises(TthAdvError, match="photons.pt_min"):
        merge_outputs([a, b], ["a.zip", "b.zip"])


def test_fit_and_categorize_take_the_configuration_of_their_input(moved_run, tmp_path, caplog):
    hist, dump = moved_run / "hist", moved_run / "dump"
    moved = load_config(moved_run / "moved.yaml")
    assert load_output(output_path(hist))["metadata"]["config"] == config_to_data(moved)
    assert carried_config(dump_config(dump), None, "the dump") == moved
    assert main(["fit", "--histograms", str(hist), "--out", str(tmp_path / "fits")]) == 0  # no --config
    conventions = json.loads((tmp_path / "fits" / "fits.json").read_text())["conventions"]
    assert conventions["mass_window"] == [100.0, 170.0] and conventions["blind_window"] == [118.0, 132.0]
    assert main(["fit", "--histograms", str(hist), "--config", str(moved_run / "moved.yaml"), "--out",
                 str(tmp_path / "same")]) == 0  # the same configuration given again is fine
    (tmp_path / "other.yaml").write_text("mass: {signal_scan: [122.0, 128.0]}\n")
    for command in (["fit", "--histograms", str(hist), "--out", str(tmp_path / "refused")],
                    ["categorize", "--features", str(dump), "--out", str(tmp_path / "refused" / "c.json")]):
        caplog.clear()
        assert main([*command, "--config", str(tmp_path / "other.yaml")]) == 2
        assert "'mass.blind_high'" in caplog.text and "disagrees" in caplog.text, caplog.text
    assert not (tmp_path / "refused").exists()


def test_an_empty_or_missing_dump_folder_is_named(tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    for folder in ("empty", "missing"):
        caplog.clear()
        assert main(["categorize", "--features", str(tmp_path / folder), "--out", str(tmp_path / "c.json")]) == 2
        assert folder in caplog.text and "Traceback" not in caplog.text


def test_an_interrupted_write_leaves_the_previous_file_and_no_partial_one(small_manifest, config, tmp_path,
                                                                          monkeypatch):
    import uhi.io.zip

    from ttH_adv.stats.fit_analysis import write_fit_results
    from ttH_adv.stats.fit_results import FitResult

    output = run(small_manifest.select(["ttH", "data"]), config)
    path = save_output(output, tmp_path / "output.zip")
    fits = write_fit_results(FitResult([], unblinded=False), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    write_histogram = uhi.io.zip.write

    def die_after_the_first_histogram(zf, name, histogram):
        write_histogram(zf, name, histogram)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(uhi.io.zip, "write", die_after_the_first_histogram)
    with pytest.raises(KeyboardInterrupt):
        save_output(output, path)
    write_text = type(tmp_path).write_text

    def half_then_die(self, text, *args, **kwargs):
        write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(type(tmp_path), "write_text", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_fit_results(FitResult([], unblinded=True), tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # both intact, no temporary left
    assert load_output(path)["cutflow"] == json.loads(json.dumps(output["cutflow"])) and fits.is_file()
