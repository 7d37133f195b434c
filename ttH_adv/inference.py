"""Scoring exported models with onnxruntime (never TensorFlow), checked against our features.

A model file carries ``metadata_props`` (written by ``training.export``) naming its features in
order and the feature-set version.  ``load_model_info`` reads them with onnxruntime and
``check_model`` refuses a model whose features differ from ``ttH_adv.features`` before a single
event is read.  ``OnnxScorer`` is what processors hold: it pickles as (path, hash) and opens one
``InferenceSession`` per worker process, lazily, cached by the file's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TthAdvError
from .features import FEATURE_SET_VERSION, feature_names

KEY_FEATURES = "ttH_adv.features"
KEY_FEATURE_SET = "ttH_adv.feature_set"
KEY_FEATURE_SET_VERSION = "ttH_adv.feature_set_version"
KEY_SCALING = "ttH_adv.scaling"
KEY_METHOD = "ttH_adv.method"
KEY_LAMBDA = "ttH_adv.lambda"
KEY_TRAINING_SAMPLES = "ttH_adv.training_samples"
KEY_METRICS = "ttH_adv.validation_metrics"
REQUIRED_KEYS = (KEY_FEATURES, KEY_FEATURE_SET, KEY_FEATURE_SET_VERSION, KEY_SCALING, KEY_METHOD, KEY_LAMBDA)

_SESSIONS: dict[str, Any] = {}  # per process: file SHA-256 -> onnxruntime.InferenceSession


class ModelMismatchError(TthAdvError):
    """A model file does not match the analysis's features (names, order or version)."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _new_session(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One worker process per core: keep each session single-threaded.
    options.intra_op_num_threads = int(os.environ.get("TTH_ADV_ORT_THREADS", "1"))
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


def _local_copy(path: str, sha256: str) -> str:
    """The model file on this machine: the given path, or a copy uploaded to this Dask worker."""
    if os.path.isfile(path):
        return path
    try:
        from distributed import get_worker

        candidate = os.path.join(get_worker().local_directory, os.path.basename(path))
    except (ImportError, ValueError):
        candidate = ""
    if candidate and os.path.isfile(candidate) and file_sha256(candidate) == sha256:
        return candidate
    raise TthAdvError(f"model file {path} is not on this worker (ship it with condor.cluster.ship_model "
                      "or put it on a shared file system)")


def session(path: str, sha256: str):
    """The process-wide onnxruntime session for a model file (created on first use)."""
    if sha256 not in _SESSIONS:
        _SESSIONS[sha256] = _new_session(_local_copy(path, sha256))
    return _SESSIONS[sha256]


@dataclass(frozen=True)
class ModelInfo:
    path: str
    sha256: str
    features: list[str]
    feature_set: str
    feature_set_version: str
    method: str
    lam: float
    metadata: dict[str, str] = field(default_factory=dict)


def load_model_info(path: str | Path) -> ModelInfo:
    """Read a model's metadata; clear errors for a missing, unreadable or unlabelled file."""
    path = Path(path)
    if not path.is_file():
        raise TthAdvError(f"model file not found: {path}")
    sha = file_sha256(path)
    try:
        meta = dict(session(str(path), sha).get_modelmeta().custom_metadata_map)
    except Exception as exc:
        raise TthAdvError(f"cannot load ONNX model {path}: {exc}") from exc
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelMismatchError(f"model {path} lacks metadata {missing}; export it with training.export")
    return ModelInfo(str(path), sha, json.loads(meta[KEY_FEATURES]), meta[KEY_FEATURE_SET],
                     meta[KEY_FEATURE_SET_VERSION], meta[KEY_METHOD], float(meta[KEY_LAMBDA]), meta)


def check_model(info: ModelInfo) -> None:
    """Refuse a model whose features (names, order) or feature-set version differ from ours."""
    try:
        expected = feature_names(info.feature_set)
    except KeyError as exc:
        raise ModelMismatchError(f"model {info.path}: unknown feature set {info.feature_set!r}") from exc
    problems = []
    if info.feature_set_version != FEATURE_SET_VERSION[info.feature_set]:
        problems.append(f"feature-set version {info.feature_set_version!r}, analysis has "
                        f"{FEATURE_SET_VERSION[info.feature_set]!r}")
    if info.features != expected:
        missing = [f for f in expected if f not in info.features]
        extra = [f for f in info.features if f not in expected]
        if missing or extra:
            problems.append(f"features missing from the model {missing}, unknown to the analysis {extra}")
        else:
            first = next(i for i, (a, b) in enumerate(zip(info.features, expected, strict=True)) if a != b)
            problems.append(f"feature order differs from position {first}: model has {info.features[first]!r}, "
                            f"analysis expects {expected[first]!r}")
    if problems:
        raise ModelMismatchError(f"model {info.path} does not match feature set {info.feature_set!r}: "
                                 + "; ".join(problems))


class OnnxScorer:
    """Scores feature matrices with a checked model.

    It holds only the model's ``ModelInfo`` (path, hash, metadata), so it pickles without a
    session; each process opens its own on first use.
    """

    def __init__(self, path: str | Path) -> None:
        self.info = load_model_info(path)
        check_model(self.info)

    @property
    def path(self) -> str:
        """The model file."""
        return self.info.path

    @property
    def sha256(self) -> str:
        """The model file's SHA-256 (the session cache key)."""
        return self.info.sha256

    @property
    def feature_set(self) -> str:
        """The feature set the model was trained on."""
        return self.info.feature_set

    def __call__(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Signal scores for a float32 [N, n_features] matrix."""
        if len(X) == 0:
            return np.zeros(0, np.float32)
        sess = session(self.path, self.sha256)
        name = sess.get_inputs()[0].name
        out = [sess.run(None, {name: X[i:i + batch].astype(np.float32)})[0].reshape(-1)
               for i in range(0, len(X), batch)]
        return np.concatenate(out)
