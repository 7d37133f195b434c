"""File formats, not module paths: the result files' keys and the output zip's layout are pinned.

A change here is a change of format that every reader of an older file sees: regenerate
tests/reference/formats.json with ``python tests/formats.py`` only on purpose, and say so in the commit.
"""

from __future__ import annotations

import json

import pytest
from formats import FORMATS, file_trees, zip_layout

from ttH_adv.output import save_output

from conftest import run


@pytest.fixture(scope="module")
def stored():
    return json.loads(FORMATS.read_text())


def test_every_result_file_keeps_its_keys(stored):
    assert file_trees() == {name: tree for name, tree in stored.items() if name != "output.zip"}


def _keys_follow(data, tree: dict, where: str) -> None:
    """The keys of written data are the tree's at every level (records in lists and mappings too)."""
    assert isinstance(data, dict), where
    assert set(data) == set(tree), (where, sorted(set(data) ^ set(tree)))
    for key, sub in tree.items():
        value = data[key]
        if sub is None or value is None:
            continue
        items = value if isinstance(value, list) else value.values() if set(value) != set(sub) else [value]
        for i, item in enumerate(items):
            _keys_follow(item, sub, f"{where}.{key}[{i}]")


def test_a_written_fits_file_has_the_pinned_keys_and_reads_back_unchanged(small_manifest, config, stored, tmp_path):
    from ttH_adv.stats.fit_analysis import analyse, read_fit_results, write_fit_results

    result, _ = analyse(run(small_manifest, config), config, impacts=False, light=True)
    written = json.loads(write_fit_results(result, tmp_path).read_text())
    _keys_follow(written, stored["fits.json"], "fits.json")
    assert written["categories"] and written["combined"]["all_uncertainties"]["significance"] > 0
    again = read_fit_results(tmp_path).to_dict()
    assert json.dumps(again, default=float) == json.dumps(written)


def test_the_output_zip_layout_is_pinned(small_manifest, config, stored, tmp_path):
    assert zip_layout(save_output(run(small_manifest, config), tmp_path / "output.zip")) == stored["output.zip"]
