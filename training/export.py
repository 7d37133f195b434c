"""ONNX export of a trained classifier: standardisation inside the graph, metadata per DESIGN.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ttH_adv import inference as inf
from ttH_adv.features import FEATURE_SET_VERSION

from .methods import DecorrelatedClassifier
from .models import tf

OPSET = 17


def _serving_function(model: DecorrelatedClassifier, n_features: int):
    # numpy closures become graph constants (captured tf tensors would become extra inputs)
    mean = np.asarray(model.standardiser.mean, dtype=np.float32)
    std = np.asarray(model.standardiser.std, dtype=np.float32)
    kept = np.asarray(model.kept, dtype=np.int32)
    classifier = model.classifier
    spec = [tf.TensorSpec([None, n_features], tf.float32, name="features")]

    @tf.function(input_signature=spec)
    def score(features):
        x = tf.gather((features - tf.constant(mean)) / tf.constant(std), tf.constant(kept), axis=1)
        return tf.identity(tf.reshape(tf.sigmoid(classifier(x, training=False)), [-1]), name="score")

    return score, spec


def export_onnx(model: DecorrelatedClassifier, path: str | Path, feature_set: str, feature_names: list[str],
                extra_metadata: dict[str, Any] | None = None) -> Path:
    """Write the model as ONNX (opset 17, dynamic batch, float32 [N, n_features] -> score [N])."""
    import onnx
    import tf2onnx

    score, spec = _serving_function(model, len(feature_names))
    proto, _ = tf2onnx.convert.from_function(score, input_signature=spec, opset=OPSET)
    metadata = {
        inf.KEY_FEATURES: json.dumps(feature_names),
        inf.KEY_FEATURE_SET: feature_set,
        inf.KEY_FEATURE_SET_VERSION: FEATURE_SET_VERSION[feature_set],
        inf.KEY_SCALING: json.dumps({"inside_graph": True, "mean": model.standardiser.mean.tolist(),
                                     "std": model.standardiser.std.tolist()}),
        inf.KEY_METHOD: model.method,
        inf.KEY_LAMBDA: repr(model.lam),
        "ttH_adv.dropped_features": json.dumps(getattr(model, "dropped", [])),
    }
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value, default=float)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return path
