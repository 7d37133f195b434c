"""Scoring exported models with onnxruntime (never TensorFlow), checked against our features.

A model file carries ``metadata_props`` (written by ``training.export``) naming its features in
order, the feature-set version and its folds.  ``load_model_info`` reads them with onnxruntime and
``check_model`` refuses a model whose features differ from ``ttH_adv.event.features`` (or whose graph
input disagrees with its own metadata) before a single event is read.  A k-fold model takes the
events' ``event_number`` and scores each with the network that did not train on it; a ``ddt``
model also takes the protected variable (m_yy).  The graph's first output is the signal score; a multi-class
model's second is every class's probability, its classes named in the metadata (``KEY_CLASSES``).  ``OnnxScorer`` is what processors hold: it pickles as (path, hash) and opens one
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

from .errors import ConfigError, TthAdvError, one_line
from .event.features import FEATURE_SET_VERSION, feature_names

# The metadata keys are a file format, not module paths: a model exported under a former key name still loads.
KEY_FEATURES = "ttH_adv.event.features"
FORMER_KEYS = {"ttH_adv.features": KEY_FEATURES}   # the features' key before the package's layout moved
KEY_FEATURE_SET = "ttH_adv.feature_set"
KEY_FEATURE_SET_VERSION = "ttH_adv.feature_set_version"
KEY_SCALING = "ttH_adv.scaling"
KEY_METHOD = "ttH_adv.method"
KEY_LAMBDA = "ttH_adv.lambda"
KEY_TRAINING_SAMPLES = "ttH_adv.training_samples"
KEY_METRICS = "ttH_adv.validation_metrics"
KEY_FOLDS = "ttH_adv.folds"
KEY_PROTECTED = "ttH_adv.protected"
KEY_OUTPUTS = "ttH_adv.outputs"            # the graph's outputs in order: the score first, then (multi-class) the
KEY_CLASSES = "ttH_adv.classes"            # probabilities of these classes, in this order
OUTPUT_SCORE, OUTPUT_PROBABILITIES = "score", "probabilities"
KEY_QUANTISATION = "ttH_adv.quantisation"  # int8 models only: how they were made and their parity
REQUIRED_KEYS = (KEY_FEATURES, KEY_FEATURE_SET, KEY_FEATURE_SET_VERSION, KEY_SCALING, KEY_METHOD, KEY_LAMBDA,
                 KEY_FOLDS)
INPUT_FEATURES, INPUT_EVENT_NUMBER, INPUT_PROTECTED = "features", "event_number", "protected"

_SESSIONS: dict[str, Any] = {}  # per process: file SHA-256 -> onnxruntime.InferenceSession
# A forked child must not use its parent's sessions: their thread pools are not copied.
os.register_at_fork(after_in_child=_SESSIONS.clear)


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
    n_folds: int                      # 1: one network trained on all events
    inputs: dict[str, list]           # graph input name -> shape (None for a dynamic dimension)
    metadata: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=lambda: [OUTPUT_SCORE])  # graph output names, in order

    @property
    def classes(self) -> list[str]:
        """A multi-class model's classes, in the order of its probabilities (empty for a binary model)."""
        return list(json.loads(self.metadata.get(KEY_CLASSES, "[]")))

    @property
    def trained_on_all_events(self) -> bool:
        """One network trained on every event: it scores its own training events in-sample."""
        return self.n_folds == 1

    def training_datasets(self) -> list[str]:
        """Datasets whose events trained the model (from its metadata)."""
        samples = json.loads(self.metadata.get(KEY_TRAINING_SAMPLES, "{}"))
        return list(samples.get("datasets", []))


def load_model_info(path: str | Path) -> ModelInfo:
    """Read a model's metadata; clear errors for a missing, unreadable or unlabelled file."""
    path = Path(path)
    if not path.is_file():
        raise TthAdvError(f"model file not found: {path}")
    sha = file_sha256(path)
    try:
        sess = session(str(path), sha)
        meta = dict(sess.get_modelmeta().custom_metadata_map)
    except Exception as exc:
        raise TthAdvError(f"cannot load ONNX model {path}: {one_line(exc)}") from exc
    meta.update({new: meta[old] for old, new in FORMER_KEYS.items() if old in meta and new not in meta})
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelMismatchError(f"model {path} lacks metadata {missing}; export it with training.export")
    inputs = {i.name: [d if isinstance(d, int) else None for d in i.shape] for i in sess.get_inputs()}
    return ModelInfo(str(path), sha, json.loads(meta[KEY_FEATURES]), meta[KEY_FEATURE_SET],
                     meta[KEY_FEATURE_SET_VERSION], meta[KEY_METHOD], float(meta[KEY_LAMBDA]),
                     int(json.loads(meta[KEY_FOLDS])["n_folds"]), inputs, meta, [o.name for o in sess.get_outputs()])


def _some(names: list[str], most: int = 4) -> str:
    """A list of names, cut to its first few (the error stays one readable line)."""
    return str(names) if len(names) <= most else f"{names[:most]} and {len(names) - most} more"


def check_model(info: ModelInfo) -> None:
    """Refuse a model whose features (names, order) or feature-set version differ from ours."""
    try:
        expected = feature_names(info.feature_set)
    except ConfigError as exc:
        raise ModelMismatchError(f"model {info.path}: unknown feature set {info.feature_set!r}") from exc
    problems = []
    if info.feature_set_version != FEATURE_SET_VERSION[info.feature_set]:
        problems.append(f"feature-set version {info.feature_set_version!r}, analysis has "
                        f"{FEATURE_SET_VERSION[info.feature_set]!r}")
    if info.features != expected:
        missing = [f for f in expected if f not in info.features]
        extra = [f for f in info.features if f not in expected]
        if missing or extra:
            problems.append(f"features missing from the model {_some(missing)}, unknown to the analysis {_some(extra)}")
        else:
            first = next(i for i, (a, b) in enumerate(zip(info.features, expected, strict=True)) if a != b)
            problems.append(f"feature order differs from position {first}: model has {info.features[first]!r}, "
                            f"analysis expects {expected[first]!r}")
    if problems:
        raise ModelMismatchError(f"model {info.path} does not match feature set {info.feature_set!r}: "
                                 + "; ".join(problems))
    _check_graph_inputs(info)


def _check_graph_inputs(info: ModelInfo) -> None:
    """The graph's inputs must agree with the metadata: width, and the event number of a k-fold model."""
    width = (info.inputs.get(INPUT_FEATURES) or [None, None])[-1]
    if INPUT_FEATURES not in info.inputs or width != len(info.features):
        raise ModelMismatchError(f"model {info.path}: graph input {INPUT_FEATURES!r} has shape "
                                 f"{info.inputs.get(INPUT_FEATURES)}, its metadata lists {len(info.features)} features")
    if (INPUT_EVENT_NUMBER in info.inputs) != (info.n_folds > 1):
        raise ModelMismatchError(f"model {info.path}: metadata says {info.n_folds} fold(s) but the graph "
                                 f"{'has' if INPUT_EVENT_NUMBER in info.inputs else 'lacks'} an "
                                 f"{INPUT_EVENT_NUMBER!r} input")
    unknown = set(info.inputs) - {INPUT_FEATURES, INPUT_EVENT_NUMBER, INPUT_PROTECTED}
    if unknown:
        raise ModelMismatchError(f"model {info.path}: unknown graph inputs {sorted(unknown)}")
    # models exported before the outputs were named have one output, the score, under another name
    named = KEY_OUTPUTS in info.metadata
    expected = json.loads(info.metadata[KEY_OUTPUTS]) if named else info.outputs[:1]
    if info.outputs != expected or (OUTPUT_PROBABILITIES in expected) != bool(info.classes):
        raise ModelMismatchError(f"model {info.path}: graph outputs {info.outputs}, its metadata lists {expected} "
                                 f"and classes {info.classes}")


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

    @property
    def needs_event_number(self) -> bool:
        """A k-fold model: each event's network is chosen by its event number."""
        return INPUT_EVENT_NUMBER in self.info.inputs

    @property
    def needs_protected(self) -> bool:
        """The model's output map takes the protected variable (m_yy)."""
        return INPUT_PROTECTED in self.info.inputs

    @property
    def classes(self) -> list[str]:
        """A multi-class model's classes, in the order of its probabilities (empty for a binary model)."""
        return self.info.classes

    def __call__(self, X: np.ndarray, event_number: np.ndarray | None = None, protected: np.ndarray | None = None,
                 batch: int = 65536) -> np.ndarray:
        """Signal scores for a float32 [N, n_features] matrix (plus event numbers and m_yy where the model takes them)."""
        return self.outputs(X, event_number, protected, batch)[0]

    def outputs(self, X: np.ndarray, event_number: np.ndarray | None = None, protected: np.ndarray | None = None,
                batch: int = 65536) -> list[np.ndarray]:
        """Every graph output, in order: the signal scores [N], and a multi-class model's probabilities [N, classes]."""
        columns = {INPUT_FEATURES: np.asarray(X, dtype=np.float32)}
        for name, values, dtype in ((INPUT_EVENT_NUMBER, event_number, np.int64), (INPUT_PROTECTED, protected, np.float32)):
            if name in self.info.inputs:
                if values is None:
                    raise TthAdvError(f"model {self.path} needs the input {name!r}")
                columns[name] = np.asarray(values, dtype=dtype)
        shapes = [(-1,), (-1, len(self.classes))][:len(self.info.outputs)]
        if len(X) == 0:
            return [np.zeros((0, *shape[1:]), np.float32) for shape in shapes]
        sess = session(self.path, self.sha256)
        batches = [sess.run(None, {k: v[i:i + batch] for k, v in columns.items()}) for i in range(0, len(X), batch)]
        return [np.concatenate([b[j].reshape(shape) for b in batches]) for j, shape in enumerate(shapes)]
