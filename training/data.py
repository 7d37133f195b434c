"""Training data from the processors' feature dumps.

Signal: the datasets of role ``signal`` in the TI region.  Background: NTNI data (role ``data``,
the reference analysis's data-driven background model), TI continuum MC (role ``continuum``), or both.  Only nominal rows, and events with at
least ``min_jets`` selected jets.  Event weights are normalised so each class sums to half the
number of events (balanced classes; MC normalisation kept within a class; negative weights kept).  Folds come
from ``eventNumber % n_folds``; the validation split inside a training fold from a hash of
``eventNumber``, so both are reproducible and independent of row order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ttH_adv.dump import read_dump
from ttH_adv.errors import TthAdvError
from ttH_adv.event.features import feature_names

from .config import DataConfig


@dataclass
class TrainingData:
    X: np.ndarray            # float32 [N, n_features]
    y: np.ndarray            # 1 signal, 0 background
    mass: np.ndarray         # m_yy, GeV
    weight: np.ndarray       # per-class normalised training weights
    event_number: np.ndarray
    dataset: np.ndarray
    features: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> TrainingData:
        """Rows where ``mask`` is true."""
        return TrainingData(self.X[mask], self.y[mask], self.mass[mask], self.weight[mask], self.event_number[mask],
                            self.dataset[mask], self.features)

    def test_mask(self, k: int, n_folds: int) -> np.ndarray:
        """Rows in fold k's test set: eventNumber % n_folds == k."""
        return self.event_number % n_folds == k

    def fold(self, k: int, n_folds: int) -> tuple[TrainingData, TrainingData]:
        """(train, test) for fold k."""
        test = self.test_mask(k, n_folds)
        return self.subset(~test), self.subset(test)

    def split_validation(self, fraction: float) -> tuple[TrainingData, TrainingData]:
        """(train, validation) by a hash of eventNumber (reproducible, order-independent)."""
        u = ((self.event_number * 2654435761) % 2**32) / 2**32
        validation = u < fraction
        return self.subset(~validation), self.subset(validation)


def _class_mask(table, config: DataConfig):
    """(signal, background) row masks from the sample roles: signal TI; NTNI data and/or TI continuum MC."""
    role = table["role"]
    region = table["region"]
    signal = pc.and_(pc.equal(role, "signal"), pc.equal(region, "TI"))
    bkg_data = pc.and_(pc.equal(role, "data"), pc.equal(region, "NTNI"))
    bkg_mc = pc.and_(pc.equal(role, "continuum"), pc.equal(region, "TI"))
    background = {"ntni_data": bkg_data, "mc": bkg_mc, "both": pc.or_(bkg_data, bkg_mc)}[config.background]
    return signal, background


def load_training_data(dump_dir: str | Path, config: DataConfig) -> TrainingData:
    """Assemble signal and background from a feature dump."""
    names = feature_names(config.feature_set)
    columns = [*names, "mgg", "weight", "eventNumber", "dataset", "role", "region", "systematic", "n_jets"]
    table = read_dump(dump_dir, columns=sorted(set(columns)))
    table = table.filter(pc.and_(pc.equal(table["systematic"], "nominal"),
                                 pc.greater_equal(table["n_jets"], config.min_jets)))
    signal, background = _class_mask(table, config)
    keep = pc.or_(signal, background)
    table = table.filter(keep)
    y = np.asarray(_class_mask(table, config)[0].to_numpy(zero_copy_only=False), dtype=np.int8)
    if y.sum() == 0 or (1 - y).sum() == 0:
        raise TthAdvError(f"feature dump {dump_dir} has no {'signal' if y.sum() == 0 else 'background'} events for "
                          f"signal (role signal, TI), background={config.background}, min_jets={config.min_jets}")
    weight = table["weight"].to_numpy().astype(np.float64)
    for cls in (0, 1):
        sel = y == cls
        weight[sel] *= 0.5 * len(y) / weight[sel].sum()
    X = np.stack([table[n].to_numpy() for n in names], axis=1).astype(np.float32)
    return TrainingData(X, y, table["mgg"].to_numpy().astype(np.float64), weight,
                        table["eventNumber"].to_numpy().astype(np.int64),
                        np.asarray(table["dataset"].to_pylist()), names)


@dataclass(frozen=True)
class Standardiser:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardiser:
        """Mean and standard deviation per feature (fitted on training folds only)."""
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        return cls(mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)
