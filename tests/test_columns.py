"""The processor's flat-column helpers against plain awkward on random jagged collections."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from ttH_adv.event import selections as sel
from ttH_adv.event.columns import Collection, Record


@pytest.fixture(scope="module")
def objects():
    """Random events with 0-5 objects each (some events empty, some with one object)."""
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 6, size=2_000)
    n = int(counts.sum())
    columns = {"pt": rng.exponential(40, n), "eta": rng.uniform(-2.5, 2.5, n).astype(np.float32),
               "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32), "flag": rng.random(n) < 0.5}
    jagged = ak.zip({k: ak.unflatten(v, counts) for k, v in columns.items()})
    return Collection(counts, columns), jagged


def test_leading_passing_objects_match_awkward(objects):
    collection, jagged = objects
    mask = collection.pt > 30
    n_passing, (first, second) = collection.leading(mask, 2)
    passing = jagged[jagged.pt > 30]
    assert np.array_equal(n_passing, ak.num(passing))
    for i, record in enumerate((first, second)):
        padded = ak.pad_none(passing, 2)[:, i]
        for name in ("pt", "eta", "phi", "flag"):
            expected = ak.to_numpy(ak.fill_none(padded[name], 0))
            assert record[name].dtype == collection.columns[name].dtype
            assert np.array_equal(record[name], expected), (i, name)


def test_leading_with_no_passing_object_gives_the_fill(objects):
    collection, _ = objects
    n_passing, (first,) = collection.leading(np.zeros(len(collection.pt), bool), 1)
    assert not n_passing.any() and not first.pt.any() and len(first.pt) == collection.n_events


def test_leading_of_every_object_pads_with_the_fill(objects):
    collection, jagged = objects
    counts, records = collection.leading(None, 3, fill=-1.0)
    assert np.array_equal(counts, ak.num(jagged))
    for i, record in enumerate(records):
        expected = ak.to_numpy(ak.fill_none(ak.pad_none(jagged.eta, 3)[:, i], -1.0)).astype(np.float32)
        assert np.array_equal(record.eta, expected), i


def test_select_and_take_events_match_awkward(objects):
    collection, jagged = objects
    selected = collection.select(collection.flag)
    expected = jagged[jagged.flag]
    assert np.array_equal(selected.counts, ak.num(expected))
    assert np.array_equal(selected.pt, ak.to_numpy(ak.flatten(expected.pt)))
    events = np.flatnonzero(np.arange(collection.n_events) % 3 == 1)
    taken = collection.take_events(events)
    assert np.array_equal(taken.counts, ak.num(jagged[events]))
    assert np.array_equal(taken.eta, ak.to_numpy(ak.flatten(jagged[events].eta)))


def test_overlap_removal_wraps_phi(objects):
    """Objects within Delta R 0.4 of a per-event reference, across the phi = +-pi seam too."""
    collection, jagged = objects
    rng = np.random.default_rng(8)
    reference = Record(eta=rng.uniform(-2.5, 2.5, collection.n_events).astype(np.float32),
                       phi=np.where(rng.random(collection.n_events) < 0.5, np.float32(3.1), np.float32(-3.1)))
    keep = sel.away_from(collection, reference)
    d_eta = jagged.eta - reference.eta
    d_phi = np.abs(jagged.phi - reference.phi)
    d_phi = np.minimum(d_phi, 2 * np.pi - d_phi)
    expected = ak.to_numpy(ak.flatten(np.hypot(d_eta, d_phi) > 0.4))
    assert np.array_equal(keep, expected)
    assert (~keep).sum() > 10  # some objects are removed, some of them across the seam
    seam = (np.abs(collection.phi) > 2.9) & (np.sign(collection.phi) != np.sign(collection.per_event(reference.phi)))
    assert (seam & ~keep).any()
