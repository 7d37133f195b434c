"""Shared fixtures: small, seeded datasets made by the project's own generator."""

from __future__ import annotations

import awkward as ak
import pytest

from ttH_adv.config import load_config
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.schema import read_events as read_file_events

SEED = 7
N_EVENTS = 60_000


@pytest.fixture(scope="session")
def config():
    return load_config()


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    """A 60k-event synthetic dataset (all samples, default file counts)."""
    out = tmp_path_factory.mktemp("ntuples")
    generate_dataset(out, N_EVENTS, SEED)
    return out


@pytest.fixture(scope="session")
def manifest(dataset_dir):
    return load_manifest(dataset_dir / "datasets.json")


def read_events(manifest, dataset: str, config) -> ak.Array:
    """All events of one dataset through the project's schema (eager, concatenated)."""
    files = manifest.datasets[dataset].files.items()
    return ak.concatenate([read_file_events(path, config.format().branches, tree) for path, tree in files])


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory):
    """A 20k-event dataset for the processor tests (executor runs are repeated)."""
    out = tmp_path_factory.mktemp("small")
    return load_manifest(generate_dataset(out, 20_000, 11))


def run(manifest, config, **kwargs):
    """Run the processor quietly with RunOptions overrides."""
    from processors.run import RunOptions, run_analysis

    kwargs.setdefault("progress", False)
    # Generated test files hold one basket per file, so basket-aligned chunks would be whole files
    # and every chunk size the same: tests cut exact chunks unless they ask for alignment.
    kwargs.setdefault("align_clusters", False)
    return run_analysis(manifest, config, RunOptions(**kwargs))


def histogram_by_dataset(output) -> dict:
    """{dataset: (values, variances)} of every histogram (``mgg``'s under the dataset's name, the others'
    as ``<histogram>/<dataset>``), so outputs compare independently of dataset order."""
    out = {}
    for name, h in output["histograms"].items():
        for d in h.axes["dataset"]:
            out[d if name == "mgg" else f"{name}/{d}"] = (h[{"dataset": d}].values(flow=True),
                                                          h[{"dataset": d}].variances(flow=True))
    return out
