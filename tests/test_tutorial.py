"""The tutorial notebook (docs/tutorial.ipynb) runs from top to bottom, as a newcomer would run it."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent.parent / "docs" / "tutorial.ipynb"


@pytest.mark.validation
def test_the_tutorial_runs_and_ends_with_a_fit_and_a_report(tmp_path):
    pytest.importorskip("tensorflow")
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "processed 63,000 events" in text and "combined" in text and "# ttH(yy) analysis report" in text
    assert "R50 against single Higgs" in text and "['continuum', 'ttH', 'single_higgs']" in text
    assert "had_H  single Higgs" in text and "lep_H  single Higgs" in text  # the control categories
    work = tmp_path / "tutorial-work"
    for made in ("plain/output.zip", "model/model.onnx", "categories.json", "fits/fits.json", "report/report.md",
                 "sculpting.png", "multiclass/model.onnx", "multiclass_final/output.zip"):
        assert (work / made).is_file(), made
