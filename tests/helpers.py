"""Helpers to build damaged inputs for the failure-path tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import uproot


def read_all(path: str | Path) -> dict[str, ak.Array]:
    """All branches of a generated file as awkward arrays, zipped per collection as written."""
    with uproot.open(path) as f:
        arrays = f["mini"].arrays(library="ak")
    out = {}
    for prefix in ("photon", "jet", "lep"):
        fields = [k for k in arrays.fields if k.startswith(prefix + "_") and k != f"{prefix}_n"]
        out[prefix] = ak.zip({k[len(prefix) + 1:]: arrays[k] for k in fields})
    for k in arrays.fields:
        if not any(k.startswith(p + "_") for p in ("photon", "jet", "lep")):
            out[k] = arrays[k]
    return out


def write_tree(path: str | Path, branches: dict[str, ak.Array], tree: str = "mini") -> Path:
    """Write a TTree the way the generator does (counters named <collection>_n)."""
    path = Path(path)
    with uproot.recreate(path) as f:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()}
        t = f.mktree(tree, types, counter_name=lambda c: f"{c}_n")
        if len(next(iter(branches.values()))):
            t.extend(branches)
    return path


def without_branch(src: str | Path, dst: str | Path, branch: str) -> Path:
    """Copy a file dropping one branch (collection fields as 'photon_isTightID')."""
    data = read_all(src)
    prefix, _, field = branch.partition("_")
    if prefix in ("photon", "jet", "lep") and field:
        rec = data[prefix]
        data[prefix] = ak.zip({f: rec[f] for f in rec.fields if f != field})
    else:
        data.pop(branch)
    return write_tree(dst, data)


def empty_copy(src: str | Path, dst: str | Path) -> Path:
    """Same branches, zero entries."""
    data = {k: v[:0] for k, v in read_all(src).items()}
    return write_tree(dst, data)


def truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """A ROOT file cut short, as after an interrupted transfer."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def copy(src: str | Path, dst: str | Path) -> Path:
    shutil.copy(src, dst)
    return Path(dst)


def write_manifest(manifest, path: str | Path) -> Path:
    """Write a Manifest back as JSON, paths relative to its folder where possible (a test's edited manifest)."""
    from ttH_adv.inputs.manifest import save_manifest

    path = Path(path)
    out = {}
    for name, d in manifest.datasets.items():
        files = {}
        for f, tree in d.files.items():
            try:
                files[str(Path(f).relative_to(path.parent.resolve()))] = tree
            except ValueError:
                files[f] = tree
        out[name] = {"files": files, "metadata": d.metadata()}
    return save_manifest(out, path)
