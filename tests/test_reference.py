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

from make_reference import compute_reference  # noqa: E402


def test_output_matches_reference_exactly():
    expected = json.loads((REFERENCE / "reference_output.json").read_text())
    actual = json.loads(json.dumps(compute_reference(), sort_keys=True))
    assert actual["cutflow"] == expected["cutflow"]
    assert actual["histograms"].keys() == expected["histograms"].keys()
    for key, bins in expected["histograms"].items():
        assert actual["histograms"][key] == bins, key
