"""The saved output of a run: the names of its histograms and of a scoring's columns."""

from __future__ import annotations

MASS_HISTOGRAM = "mgg"              # m_yy per dataset, region, category and systematic
CONTROL_HISTOGRAM = "mgg_control"   # the same for the template control selections (nominal only)


def labelled(name: str, label: str) -> str:
    """A scoring's histogram or dump column: ``name`` for a run's only model (empty label), else ``name@label``."""
    return f"{name}@{label}" if label else name
