"""The synthetic Run-2 sample catalogue: names, kinds, DSIDs, cross-sections, luminosity.

Cross-sections are sigma x BR(H->yy) in pb (LHC Higgs WG YR4, m_H = 125 GeV, BR = 2.27e-3)
for the Higgs modes; the continuum MC cross-sections are representative values for a
diphoton-filtered generation (documented in README.md).  One source of truth: the generator
writes these into the ``XSection`` branch and the manifest, the processors read them back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

from ..config import ROLES
from ..documents import parse_document, read_document
from ..errors import ManifestError, one_line

BR_H_YY = 2.27e-3
LUMINOSITY_PB = 139_000.0  # full Run-2, 139 fb^-1 (ATLAS luminosity paper, 2022)
# The synthetic data stand for a diphoton skim of effective cross-section 8.6 pb: n generated
# data events correspond to a luminosity n / 8.6 pb, and every MC sample is normalised to that
# luminosity so data and MC agree.  8.6 pb puts ~1.2M data events at 139 fb^-1, which gives a
# continuum of the order ATLAS ttH(yy) saw in its categories.
DATA_SKIM_XSEC_PB = 8.6
# The skim's diphotons by how many of the two photons are jets faking photons: yy, y+jet, jet+jet.
DATA_FAKE_SHARES = (0.70, 0.25, 0.05)


def data_luminosity_pb(n_data_events: int) -> float:
    """The integrated luminosity (pb^-1) a synthetic data sample of this size stands for."""
    return n_data_events / DATA_SKIM_XSEC_PB

KINDS = ("signal", "background", "data")
# The roles (ttH_adv.config.ROLES) and the kind of sample each is.
ROLE_KIND = {"data": "data", "signal": "signal", "resonant": "background", "continuum": "background",
             "reducible": "background"}


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    role: str
    process: str


DEFAULT_CATALOGUE = "opendata_gamgam.yaml"


def load_catalogue(name: str = DEFAULT_CATALOGUE, path: str | None = None) -> dict[int, CatalogueEntry]:
    """A DSID catalogue: a packaged one by file name (ttH_adv/data/NAME), or a user's YAML file at ``path``."""
    return dict(_read_catalogue(name, path))


@functools.cache
def _read_catalogue(name: str, path: str | None) -> tuple[tuple[int, CatalogueEntry], ...]:
    source = path if path is not None else f"ttH_adv/data/{name}"
    what = "a DSID catalogue ('samples: {DSID: {name, role, process}}')"
    data = (read_document(path, what, required=["samples"], error=ManifestError) if path is not None else
            parse_document(resources.files("ttH_adv").joinpath("data", name).read_text(), source, what,
                           required=["samples"], error=ManifestError))
    try:
        entries = tuple((int(dsid), CatalogueEntry(**entry)) for dsid, entry in data["samples"].items())
    except (AttributeError, TypeError, ValueError) as exc:
        raise ManifestError(f"{source}: not a DSID catalogue (expected 'samples: {{DSID: {{name, role, process}}}}'):"
                            f" {one_line(exc)}") from exc
    bad = {dsid: e.role for dsid, e in entries if e.role not in ROLES}
    if bad:
        raise ManifestError(f"{source}: roles must be one of {list(ROLES)}, got {bad}")
    return entries


@dataclass(frozen=True)
class SampleSpec:
    name: str
    kind: str          # signal | background | data
    dsid: int          # MC dataset ID (data: 0)
    xsec_pb: float     # sigma x BR in pb; 0 for data
    share: float       # fraction of the requested events generated for this sample
    model: str         # event model in ttH_adv.inputs.generator
    n_files: int       # files written for this sample (at the default file count)
    role: str          # data | signal | resonant | continuum | reducible (ttH_adv.config.ROLES)

    @property
    def is_data(self) -> bool:
        """True for collision data."""
        return self.kind == "data"


SAMPLES: tuple[SampleSpec, ...] = (
    SampleSpec("data", "data", 0, 0.0, 0.40, "data", 4, "data"),
    SampleSpec("ttH", "signal", 341081, 0.5071 * BR_H_YY, 0.15, "ttH", 3, "signal"),
    SampleSpec("ggH", "background", 343981, 48.58 * BR_H_YY, 0.06, "ggH", 2, "resonant"),
    SampleSpec("VBF", "background", 345041, 3.782 * BR_H_YY, 0.04, "VBF", 2, "resonant"),
    SampleSpec("WH", "background", 345318, 1.373 * BR_H_YY, 0.03, "WH", 1, "resonant"),
    SampleSpec("ZH", "background", 345319, 0.8839 * BR_H_YY, 0.03, "ZH", 1, "resonant"),
    SampleSpec("tH", "background", 346188, 0.0892 * BR_H_YY, 0.04, "tH", 1, "resonant"),
    SampleSpec("yyjets", "background", 364352, 51.8, 0.15, "yyjets", 3, "continuum"),
    SampleSpec("ttyy", "background", 345868, 0.0155, 0.10, "ttyy", 2, "continuum"),
    # The data's y+jet / jet+jet events simulated alone: their share of the skim's cross-section.  On top of the
    # shares above (which sum to 1), so that adding it changed no other sample's events.
    SampleSpec("yjets", "background", 361042, (1 - DATA_FAKE_SHARES[0]) * DATA_SKIM_XSEC_PB, 0.05, "reducible", 2,
               "reducible"),
)

SAMPLES_BY_NAME = {s.name: s for s in SAMPLES}
