"""int8 export: onnxruntime *static* quantisation calibrated on training events, with a parity check.

Static quantisation (activation ranges calibrated once, weights per output channel, QDQ
format) runs the dense layers as int8 matrix products; on one thread it scored a 4x512 MLP
about 4x faster than float32, where *dynamic* quantisation (ranges found per batch) was slower
than float32.  The float model's graph is quantised as a whole: the k-fold gather/scatter and
the standardisation stay float, only the networks' MatMul/Gemm become int8.

The int8 model is checked against its float parent on every training event (both out-of-fold,
through the k-fold graph): the score differences, and R50 and JSD50/floor of both.  It is
refused (``QuantisationError``, the file removed) where the 99th percentile of |score
difference| exceeds ``MAX_P99_DIFFERENCE`` -- e.g. for ``ddt``, whose percentile map turns the
int8 logits' small errors into large score shifts (99% within 0.20 on a small test model).  The model's metadata record what was done (``ttH_adv.quantisation``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from ttH_adv import inference as inf
from ttH_adv.errors import TthAdvError
from ttH_adv.stats import metrics

from .data import TrainingData
from .methods import evaluate_scores

CALIBRATION_EVENTS = 20_000
CALIBRATION_BATCH = 1_000
MAX_P99_DIFFERENCE = 0.02   # a category boundary moves by less than this for 99% of events


class QuantisationError(TthAdvError):
    """The int8 model's scores differ too much from its float parent (``report``: the parity and metrics)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


class _Calibration(CalibrationDataReader):
    """onnxruntime's calibration reader over a seeded sample of training events."""

    def __init__(self, data: TrainingData, inputs: dict[str, list], n_events: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(data), size=min(n_events, len(data)), replace=False))
        columns = {inf.INPUT_FEATURES: data.X[rows].astype(np.float32),
                   inf.INPUT_EVENT_NUMBER: data.event_number[rows].astype(np.int64),
                   inf.INPUT_PROTECTED: data.mass[rows].astype(np.float32)}
        self.columns = {name: values for name, values in columns.items() if name in inputs}
        self.n_events, self.start = len(rows), 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next calibration batch (None at the end)."""
        if self.start >= self.n_events:
            return None
        batch = {k: v[self.start:self.start + CALIBRATION_BATCH] for k, v in self.columns.items()}
        self.start += CALIBRATION_BATCH
        return batch

    def rewind(self) -> None:
        """Start again from the first batch."""
        self.start = 0


def quantize_model(model_path: str | Path, out_path: str | Path, data: TrainingData, binning: metrics.Binning,
                   calibration_events: int = CALIBRATION_EVENTS) -> dict[str, Any]:
    """Write the int8 model of a float ONNX model; returns the parity and metric report (also in its metadata)."""
    import onnx

    model_path, out_path = Path(model_path), Path(out_path)
    float_info = inf.load_model_info(model_path)
    calibration = _Calibration(data, float_info.inputs, calibration_events)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_static(str(model_path), str(out_path), calibration, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gemm"])
    float_scores = _scores(model_path, data)
    int8_scores = _scores(out_path, data)
    difference = np.abs(int8_scores - float_scores)
    report = {
        "kind": "onnxruntime static int8 (QDQ, per-channel weights, MinMax calibration); MatMul/Gemm only",
        "calibration_events": calibration.n_events,
        "float_model": {"path": str(model_path), "sha256": float_info.sha256},
        "parity": {"events": len(difference), "max_abs_difference": float(difference.max()),
                   "p99_abs_difference": float(np.quantile(difference, 0.99)),
                   "mean_abs_difference": float(difference.mean()), "p99_limit": MAX_P99_DIFFERENCE},
        "float": _summary(float_scores, data, binning),
        "int8": _summary(int8_scores, data, binning),
    }
    if report["parity"]["p99_abs_difference"] > MAX_P99_DIFFERENCE:
        out_path.unlink()  # never left where a run could pick it up
        raise QuantisationError(f"int8 model {out_path}: 99% of scores within {report['parity']['p99_abs_difference']:.3g} "
                                f"of the float model {model_path}, limit {MAX_P99_DIFFERENCE}; keep the float model",
                                report)
    _write_metadata(out_path, float_info.metadata, report)
    onnx.checker.check_model(str(out_path))
    return report


def _scores(path: Path, data: TrainingData) -> np.ndarray:
    """Out-of-fold scores of every training event (the k-fold graph picks each event's network)."""
    return inf.OnnxScorer(path)(data.X, data.event_number, data.mass).astype(np.float64)


def _summary(scores: np.ndarray, data: TrainingData, binning: metrics.Binning) -> dict[str, float]:
    result = evaluate_scores(scores, data.y, data.mass, data.weight, binning)
    return {k: result[k] for k in ("auc", "r50", "ratio50", "r80", "ratio80")}


def _write_metadata(path: Path, float_metadata: dict[str, str], report: dict) -> None:
    """The float model's metadata plus the quantisation record."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in {**float_metadata, inf.KEY_QUANTISATION: json.dumps(report, default=float)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
