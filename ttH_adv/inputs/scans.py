"""What a manifest learns from one file, per reader: data or MC, DSID, cross-section and sum of weights.

``tth-adv manifest`` (``ttH_adv.inputs.opendata``) opens each file once and hands its tree to the
scan of the format's reader (``ttH_adv.inputs.objects.READERS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import awkward as ak
import numpy as np
import uproot

from ..config import InputFormat
from ..errors import ManifestError

SUM_WEIGHTS_RTOL = 1e-6  # the sums of weights are float32 in the 2020 files


@dataclass
class ScannedFile:
    path: str
    format: str
    is_data: bool
    dsid: int | None
    process: str | None             # from the file name, for DSIDs outside the catalogue
    entries: int | None = None      # None: a remote file, not opened
    xsec_pb: float | None = None
    sum_weights: float | None = None


def first_value(tree: uproot.TTree, branch: str) -> float:
    """The first entry of a branch (a per-file constant: DSID, cross-section)."""
    return float(tree[branch].array(entry_stop=1, library="np")[0])



def scan_flat(scanned: ScannedFile, tree: uproot.TTree, fmt: InputFormat) -> None:
    """A flat ntuple's DSID (name, else its DSID branch), cross-section and sum of weights from its branches."""
    if scanned.is_data or not scanned.entries:
        return
    branches = set(tree.keys())
    if scanned.dsid is None:
        dsid_branch = fmt.branches.event.get("dsid")
        if dsid_branch not in branches:
            raise ManifestError(f"{scanned.path}: its name says neither data nor mc_<DSID> and it has no DSID branch: "
                                "give its role with --role FILE=ROLE")
        scanned.dsid = int(first_value(tree, dsid_branch))
    norm = fmt.normalisation
    missing = [b for b in (*norm.cross_section, norm.sum_of_weights) if b and b not in branches]
    if missing:
        raise ManifestError(f"{scanned.path}: MC file without the {', '.join(missing)} branch(es) of its format's "
                            "normalisation")
    if norm.cross_section:
        scanned.xsec_pb = math.prod(first_value(tree, b) for b in norm.cross_section)
    if norm.sum_of_weights:
        sums = tree[norm.sum_of_weights].array(library="np")
        if not np.allclose(sums, sums[0], rtol=SUM_WEIGHTS_RTOL):
            raise ManifestError(f"{scanned.path}: {norm.sum_of_weights} differs between entries; expected the DSID "
                                "total in every entry")
        scanned.sum_weights = float(sums[0])


def scan_physlite(scanned: ScannedFile, tree: uproot.TTree, fmt: InputFormat) -> None:
    """A PHYSLITE file's data flag (EventInfo's event type), DSID and its events' summed nominal weights."""
    if not scanned.entries:
        return
    info = {k.rsplit(".", 1)[-1]: k for k in tree.keys(filter_name="EventInfoAux*")}
    simulation = int(tree[info["eventTypeBitmask"]].array(entry_stop=1, library="np")[0]) & 1
    scanned.is_data = not simulation
    if scanned.is_data:
        return
    scanned.dsid = int(first_value(tree, info[fmt.branches.event["dsid"]]))
    weights = tree[info[fmt.branches.event["mc_weight"]]].array(library="ak")[:, 0]  # the nominal weight
    scanned.sum_weights = float(np.sum(ak.to_numpy(weights), dtype=np.float64))
