"""What ``tth-adv train`` made, as typed records: results.json is ``TrainingSummary.to_dict()``.

Per trained result (method, lambda, seed): its out-of-fold metrics (R50, JSD over the floor, the
kept epochs, the ceiling of an unconstrained network, ROC and score histograms; every other figure
kept as written), its epoch history and its ONNX file; for the folder: the chosen model, each
method's lambda scan and choice, the table, and the int8 model's parity where made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..records import Record


@dataclass
class KeptEpoch(Record):
    """The epoch one fold's network kept, and whether it met the flatness target."""

    fold: int
    epoch: int
    within_target: bool


@dataclass
class CeilingFigures(Record):
    """A network made flat in m_yy by a cross-fitted map: its rejection and flatness."""

    auc: float
    r50: float
    r80: float
    ratio50: float            # JSD50 / floor
    ratio80: float
    inverse_jsd50: float
    inverse_jsd80: float


@dataclass
class CeilingPoint(CeilingFigures):
    """One point of the ceiling curve: the map's binning and the figures it gives."""

    events_per_bin: float = 0.0


@dataclass
class Roc(Record):
    """Out-of-fold ROC points."""

    signal_efficiency: list[float]
    background_efficiency: list[float]


@dataclass
class ScoreHistogram(Record):
    """Fold 0's score distribution on its training and its test events (normalised)."""

    train: list[float]
    test: list[float]


@dataclass
class TrainingMetrics(Record):
    """A trained result's out-of-fold figures (every one not named here kept in ``extra``, as written)."""

    EXTRA: ClassVar[str] = "extra"

    auc: float
    r50: float
    r80: float
    ratio50: float            # JSD50 / floor
    ratio80: float            # JSD80 / floor
    r50_single_higgs: float | None = None  # a multi-class network's single-Higgs rejection at the same cuts
    r80_single_higgs: float | None = None
    kept_epochs: list[KeptEpoch] = field(default_factory=list)
    unconstrained: bool = False   # the plain network of its feature set, whose ceiling the others are held to
    ceiling: CeilingFigures | None = None
    ceiling_curve: list[CeilingPoint] = field(default_factory=list)
    roc: Roc | None = None
    score_histograms: dict[str, ScoreHistogram] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class TrainedEntry(Record):
    """One trained (method, lambda, seed) and its exported k-fold model."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"lam": "lambda"}

    method: str
    lam: float
    seed: int
    name: str
    model: str
    metrics: TrainingMetrics
    history: list = field(default_factory=list)   # per fold, per epoch (as training recorded it)
    in_comparison: bool = True    # False: a lambda of a scan other than the chosen one
    feature_set: str = ""         # set where several folders' results are shown together

    @property
    def label(self) -> str:
        """The result in a legend: method, lambda where it has one, and its feature set where results mix them."""
        details = [f"lambda {self.lam:g}"] * bool(self.lam) + [self.feature_set] * bool(self.feature_set)
        return self.method + (f" ({', '.join(details)})" if details else "")


@dataclass
class Chosen(Record):
    """The model the folder's model.onnx is, and the rule that chose it."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"lam": "lambda"}

    method: str
    lam: float
    seed: int
    model: str
    rule: str
    feature_set: str = ""


@dataclass
class ScanPoint(Record):
    """One lambda of a method's scan."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"lam": "lambda"}

    lam: float
    r50: float
    ratio50: float
    ratio80: float


@dataclass
class LambdaChoice(Record):
    """A method's lambda scan on the first seed and the lambda the flatness target chose."""

    chosen: float
    seed: int
    rule: str
    scan: list[ScanPoint]


@dataclass
class TrainingSummary(Record):
    """results.json of a training folder."""

    results: list[TrainedEntry]
    chosen: Chosen
    feature_set: str
    lambda_choice: dict[str, LambdaChoice] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [1])
    table: str = ""
    n_signal: int = 0
    n_background: int = 0
    jsd_binning: str = ""
    out_of_fold: str = ""
    all_events_model: bool = False
    int8: dict | None = None      # the int8 model's parity and figures against the float model (or why refused)
