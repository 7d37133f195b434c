"""One-screen text summaries of inputs and outputs."""

from __future__ import annotations

from pathlib import Path

import uproot

from ..config import AnalysisConfig
from ..inputs.manifest import load_manifest


def summarise_manifest(path: str | Path, config: AnalysisConfig) -> str:
    """A table of datasets: role, files, entries, cross-section and expected yield sigma x L."""
    manifest = load_manifest(path)
    lines = [f"datasets manifest {manifest.path}",
             f"{'dataset':<10} {'role':<11} {'files':>5} {'entries':>10} {'xsec [pb]':>11} {'sigma x L':>10}"]
    total = 0
    for d in manifest.datasets.values():
        tree = config.format(d.format).branches.tree
        entries = sum(uproot.open({f: t or tree}).num_entries for f, t in d.files.items())
        total += entries
        xsec = f"{d.xsec_pb:11.4g}" if d.xsec_pb else f"{'-':>11}"
        expected = f"{d.xsec_pb * d.luminosity_pb:10.4g}" if d.xsec_pb else f"{'-':>10}"
        lines.append(f"{d.name:<10} {d.role:<11} {len(d.files):>5} {entries:>10} {xsec} {expected}")
    lines.append(f"{'total':<10} {'':<11} {sum(len(d.files) for d in manifest.datasets.values()):>5} {total:>10}")
    return "\n".join(lines)
