"""ONNX export: all k fold networks of a result in one graph, standardisation inside, metadata per DESIGN.md.

Graph inputs: ``features`` float32 [N, n_features]; ``event_number`` int64 [N] for a k-fold
model (each event is scored by network f = eventNumber mod k, the one that did not train on it;
``training.data.TrainingData.test_mask`` is the same rule); ``protected`` float32 [N] (m_yy) for
methods whose output map needs it (``ddt``).  Output ``score`` float32 [N]; a multi-class network's
graph also has ``probabilities`` float32 [N, classes], the classes named in the metadata.  Inside the graph
each fold's events are gathered, scored by their own network only and scattered back, so one
onnxruntime call scores a chunk at the cost of one network per event.
A model trained on all events (one network, no ``event_number`` input) is marked as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ttH_adv import inference as inf
from ttH_adv.atomic import atomic_path
from ttH_adv.event.features import FEATURE_SET_VERSION

from .methods import DecorrelatedClassifier
from .models import tf

OPSET = 17
FOLD_RULE = "eventNumber % n_folds == f is scored by network f, which trained on the other folds"


def _network_outputs(model: DecorrelatedClassifier, features, protected) -> list:
    """One fold's outputs: standardise, keep its features, classify; the score (its method's output map of the
    discriminant), and a multi-class network's probabilities."""
    # numpy closures become graph constants (captured tf tensors would become extra inputs)
    mean = tf.constant(np.asarray(model.standardiser.mean, dtype=np.float32))
    std = tf.constant(np.asarray(model.standardiser.std, dtype=np.float32))
    x = tf.gather((features - mean) / std, tf.constant(np.asarray(model.kept, dtype=np.int32)), axis=1)
    outputs = model.classifier(x, training=False)
    strategy = model.strategy
    score = tf.cast(strategy.score(strategy.discriminant(outputs), protected), tf.float32)
    probabilities = strategy.probabilities(outputs)
    return [score] if probabilities is None else [score, tf.cast(probabilities, tf.float32)]


def output_names(model: DecorrelatedClassifier) -> list[str]:
    """The graph's outputs, in order: the score, and a multi-class network's probabilities."""
    multiclass = len(model.strategy.classes) > 2
    return [inf.OUTPUT_SCORE, inf.OUTPUT_PROBABILITIES] if multiclass else [inf.OUTPUT_SCORE]


def _input_specs(models: list[DecorrelatedClassifier], n_features: int, kfold: bool) -> list:
    specs = [tf.TensorSpec([None, n_features], tf.float32, name=inf.INPUT_FEATURES)]
    if kfold:
        specs.append(tf.TensorSpec([None], tf.int64, name=inf.INPUT_EVENT_NUMBER))
    if models[0].strategy.uses_protected_input:
        specs.append(tf.TensorSpec([None], tf.float32, name=inf.INPUT_PROTECTED))
    return specs


def _serving_function(models: list[DecorrelatedClassifier], n_features: int, kfold: bool):
    specs = _input_specs(models, n_features, kfold)
    names = [s.name for s in specs]
    k = len(models)
    classes = len(models[0].strategy.classes)

    @tf.function(input_signature=specs)
    def score(*inputs):
        given = dict(zip(names, inputs, strict=True))
        features, protected = given[inf.INPUT_FEATURES], given.get(inf.INPUT_PROTECTED)
        if not kfold:
            return tuple(tf.identity(t) for t in _network_outputs(models[0], features, protected))
        fold = tf.math.floormod(given[inf.INPUT_EVENT_NUMBER], k)   # numpy's % for negative numbers too
        rows_total = tf.shape(features, out_type=tf.int64)[:1]
        totals = None
        for f, model in enumerate(models):
            rows = tf.where(tf.equal(fold, f))                       # [n_f, 1]
            mine = None if protected is None else tf.gather_nd(protected, rows)
            outputs = _network_outputs(model, tf.gather_nd(features, rows), mine)
            shapes = [rows_total, tf.concat([rows_total, tf.constant([classes], tf.int64)], 0)]
            scattered = [tf.scatter_nd(rows, t, shape) for t, shape in zip(outputs, shapes, strict=False)]
            totals = scattered if totals is None else [a + b for a, b in zip(totals, scattered, strict=True)]
        return tuple(tf.identity(t) for t in totals)

    return score, specs


def _name_outputs(proto, names: list[str]) -> None:
    """Give the graph's outputs their names (tf2onnx calls them after the function's tensors)."""
    for output, name in zip(proto.graph.output, names, strict=True):
        for node in proto.graph.node:
            node.output[:] = [name if o == output.name else o for o in node.output]
            node.input[:] = [name if i == output.name else i for i in node.input]
        output.name = name


def export_onnx(models: list[DecorrelatedClassifier], path: str | Path, feature_set: str, feature_names: list[str],
                extra_metadata: dict[str, Any] | None = None, all_events: bool = False) -> Path:
    """Write the fold networks of one result as ONNX (opset 17, dynamic batch).

    ``models[f]`` is the network trained without fold f.  ``all_events=True`` takes a single
    network trained on every event (no out-of-fold guarantee; marked in the metadata).
    """
    import onnx
    import tf2onnx

    if all_events != (len(models) == 1):
        raise ValueError("a k-fold export takes k >= 2 networks; an all-events export exactly one")
    score, specs = _serving_function(models, len(feature_names), kfold=not all_events)
    proto, _ = tf2onnx.convert.from_function(score, input_signature=specs, opset=OPSET)
    first = models[0]
    outputs = output_names(first)
    _name_outputs(proto, outputs)
    folds = {"n_folds": 1, "trained_on": "all events"} if all_events else {"n_folds": len(models), "rule": FOLD_RULE}
    folds["inputs"] = [s.name for s in specs]
    metadata = {
        inf.KEY_FEATURES: json.dumps(feature_names),
        inf.KEY_FEATURE_SET: feature_set,
        inf.KEY_FEATURE_SET_VERSION: FEATURE_SET_VERSION[feature_set],
        inf.KEY_SCALING: json.dumps({"inside_graph": True,
                                     "folds": [{"mean": m.standardiser.mean.tolist(), "std": m.standardiser.std.tolist()}
                                               for m in models]}),
        inf.KEY_METHOD: first.method,
        inf.KEY_LAMBDA: repr(first.lam),
        inf.KEY_FOLDS: json.dumps(folds),
        inf.KEY_OUTPUTS: json.dumps(outputs),
        "ttH_adv.dropped_features": json.dumps([m.dropped for m in models]),
        "ttH_adv.method_settings": json.dumps([m.strategy.metadata() for m in models]),
    }
    if first.strategy.uses_protected_input:
        metadata[inf.KEY_PROTECTED] = "mgg"
    if inf.OUTPUT_PROBABILITIES in outputs:
        metadata[inf.KEY_CLASSES] = json.dumps(list(first.strategy.classes))
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value, default=float)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return path
