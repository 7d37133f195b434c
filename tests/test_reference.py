"""Regression against a checked-in reference output (as the Analysis Grand Challenge does).

If this fails after an intended change, regenerate with
``python tests/reference/make_reference.py`` and explain the change in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REFERENCE = Path(__file__).parent / "reference"
sys.path.insert(0, str(REFERENCE))

import pickle  # noqa: E402

import pytest  # noqa: E402
from make_reference import reference_output, reference_summary  # noqa: E402

from ttH_adv.output import load_output, save_output  # noqa: E402


def _assert_matches_reference(output: dict) -> None:
    expected = json.loads((REFERENCE / "reference_output.json").read_text())
    actual = json.loads(json.dumps(reference_summary(output), sort_keys=True))
    assert actual["cutflow"] == expected["cutflow"]
    assert actual["histograms"].keys() == expected["histograms"].keys()
    for key, bins in expected["histograms"].items():
        assert actual["histograms"][key] == bins, key


def test_output_matches_reference_exactly_and_so_does_its_saved_file(tmp_path, monkeypatch):
    output = reference_output()
    _assert_matches_reference(output)
    path = save_output(output, tmp_path / "output.zip")

    def refuse(*args, **kwargs):
        raise AssertionError("the saved output was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = load_output(path)
    _assert_matches_reference(loaded)
    assert loaded["metadata"] == json.loads(json.dumps(output["metadata"]))
    assert loaded["histograms"].keys() == output["histograms"].keys()
    for name, h in output["histograms"].items():
        back = loaded["histograms"][name]
        assert back == h, name  # axes (names, labels, categories, edges, flow) and storage
        assert [a.name for a in back.axes] == [a.name for a in h.axes]
        assert [a.label for a in back.axes] == [a.label for a in h.axes]
        for part in ("value", "variance"):
            assert (back.view(flow=True)[part] == h.view(flow=True)[part]).all(), (name, part)
    with pytest.raises(AssertionError, match="unpickled"):  # the guard itself works
        pickle.loads(pickle.dumps(1))
