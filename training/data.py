"""Training data from the processors' feature dumps.

Signal: the datasets of role ``signal`` in the TI region.  Background: NTNI data (role ``data``,
the reference analysis's data-driven background model), TI continuum MC (role ``continuum``), or both.  For a
multi-class network a third class, the single-Higgs processes (role ``resonant``, TI).  Only nominal rows, and events with at
least ``min_jets`` selected jets.  Event weights are normalised so each class sums to half the
number of events (balanced classes; MC normalisation kept within a class; negative weights kept).  Folds come
from ``eventNumber % n_folds``; the validation split inside a training fold from a hash of
``eventNumber``, so both are reproducible and independent of row order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ttH_adv.dump import read_dump
from ttH_adv.errors import TthAdvError
from ttH_adv.event.features import feature_names

from .config import DataConfig

# The classes of a network, in the order of the labels y (and of a multi-class network's outputs).
BINARY_CLASSES = ("background", "signal")
SIGNAL_CLASS = "ttH"
MULTICLASS_CLASSES = ("continuum", SIGNAL_CLASS, "single_higgs")


@dataclass
class TrainingData:
    X: np.ndarray            # float32 [N, n_features]
    y: np.ndarray            # 1 signal, 0 background (continuum), 2 single Higgs (multi-class data only)
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


def _class_masks(table, config: DataConfig, multiclass: bool) -> list:
    """Row masks per class, in label order, from the sample roles: background (NTNI data and/or TI continuum MC),
    signal (TI), and for multi-class data the single-Higgs processes (TI)."""
    role = table["role"]
    ti = pc.equal(table["region"], "TI")
    signal = pc.and_(pc.equal(role, "signal"), ti)
    bkg_data = pc.and_(pc.equal(role, "data"), pc.equal(table["region"], "NTNI"))
    bkg_mc = pc.and_(pc.equal(role, "continuum"), ti)
    background = {"ntni_data": bkg_data, "mc": bkg_mc, "both": pc.or_(bkg_data, bkg_mc)}[config.background]
    return [background, signal] + ([pc.and_(pc.equal(role, "resonant"), ti)] if multiclass else [])


def load_single_higgs(dump_dir: str | Path, config: DataConfig) -> TrainingData | None:
    """The single-Higgs events (role ``resonant``, TI) of a feature dump, which no binary network trains on: the
    events its single-Higgs rejection is measured on (None where the dump has none)."""
    try:
        data = load_training_data(dump_dir, config, multiclass=True)
    except TthAdvError:
        return None
    return data.subset(data.y == 2)


def load_training_data(dump_dir: str | Path, config: DataConfig, multiclass: bool = False) -> TrainingData:
    """Assemble the classes from a feature dump (background and signal; with ``multiclass``, single Higgs too).

    Each class's weights sum to the number of events over the number of classes."""
    names = feature_names(config.feature_set)
    columns = [*names, "mgg", "weight", "eventNumber", "dataset", "role", "region", "systematic", "n_jets"]
    table = read_dump(dump_dir, columns=sorted(set(columns)))
    table = table.filter(pc.and_(pc.equal(table["systematic"], "nominal"),
                                 pc.greater_equal(table["n_jets"], config.min_jets)))
    masks = [np.asarray(m.to_numpy(zero_copy_only=False), dtype=bool) for m in _class_masks(table, config, multiclass)]
    keep = np.logical_or.reduce(masks)
    y = np.zeros(table.num_rows, dtype=np.int8)
    for label, mask in enumerate(masks):
        y[mask] = label
    table, y = table.filter(pa.array(keep)), y[keep]
    classes = MULTICLASS_CLASSES if multiclass else BINARY_CLASSES
    missing = [name for label, name in enumerate(classes) if not (y == label).any()]
    if missing:
        raise TthAdvError(f"feature dump {dump_dir} has no {missing[0]} events for signal (role signal, TI), "
                          f"background={config.background}{', single Higgs (role resonant, TI)' if multiclass else ''}"
                          f", min_jets={config.min_jets}")
    weight = table["weight"].to_numpy().astype(np.float64)
    for cls in range(len(classes)):
        sel = y == cls
        weight[sel] *= len(y) / len(classes) / weight[sel].sum()
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
