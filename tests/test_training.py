"""Training: the adversary decorrelates, export parity, metadata, mismatched models refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from processors.tth import TthProcessor  # noqa: E402
from training.config import load_training_config  # noqa: E402
from training.data import load_training_data  # noqa: E402
from training.export import export_onnx  # noqa: E402
from training.methods import (  # noqa: E402
    DecorrelatedClassifier,
    EpochRecord,
    correlated_features,
    mass_reweighting,
    selection_key,
)
from training.models import mixture_information, tf  # noqa: E402
from ttH_adv import metrics  # noqa: E402
from ttH_adv.features import FEATURE_SET_VERSION, feature_names  # noqa: E402
from ttH_adv.inference import ModelMismatchError, OnnxScorer, check_model, load_model_info  # noqa: E402

TINY = {"classifier": {"layers": [32, 32], "dropout": 0.0},
        "adversary": {"layers": [16]},
        "schedule": {"epochs": 6, "pretrain_classifier_epochs": 2, "pretrain_adversary_epochs": 2,
                     "batch_size": 512, "patience": 6}}


def _toy(n=16_000, seed=0):
    """One genuine discriminant and one feature that is mostly m_yy."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int8)
    mass = np.where(y == 1, rng.normal(125, 2, n), 105 + rng.exponential(25, n)).clip(105, 159.9)
    x1 = np.where(y == 1, rng.normal(1, 1, n), rng.normal(0, 1, n))
    x2 = (mass - 130) / 15 + rng.normal(0, 0.3, n)
    return np.stack([x1, x2], axis=1).astype(np.float32), y, mass, np.ones(n)


def _bkg_dcor(model, X, y, m):
    return metrics.distance_correlation(model.predict(X[y == 0]), m[y == 0])


def _gaussian_conditional(s, rho, components=1):
    """Mixture parameters of q(m | s) = N(rho s, 1 - rho^2), the exact conditional of a unit bivariate normal."""
    n = len(s)
    means = np.repeat((rho * s)[:, None], components, axis=1)
    log_sigmas = np.full((n, components), 0.5 * np.log(1 - rho**2))
    return [tf.constant(a, tf.float32) for a in (means, log_sigmas, np.zeros((n, components)))]


def test_adversary_information_matches_the_analytic_mutual_information():
    rng = np.random.default_rng(4)
    s, noise = rng.normal(size=(2, 3000))
    rho = 0.6
    m = rho * s + np.sqrt(1 - rho**2) * noise
    ones = tf.ones(len(s))
    estimate = float(mixture_information(_gaussian_conditional(s, rho), tf.constant(m, tf.float32), ones))
    assert estimate == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.02)  # 0.223 nats
    unrelated = float(mixture_information(_gaussian_conditional(s, rho), tf.constant(rng.permutation(m), tf.float32),
                                          ones))
    assert unrelated < 0.0  # a conditional that does not hold scores worse than its own marginal


def test_adversary_information_is_zero_when_the_mixture_ignores_the_score():
    """A mixture that fits the m_yy shape badly but does not use the score extracts no information.

    The old penalty, H(m) from a histogram minus the mixture's NLL, was blind to sculpting below
    the mixture's misfit of the marginal; against its own implied marginal the baseline is exact.
    """
    rng = np.random.default_rng(5)
    m = 105 + rng.exponential(25, 2000)
    params = [tf.constant(np.full((2000, 2), v), tf.float32) for v in (0.0, 0.3, 0.0)]
    info = float(mixture_information(params, tf.constant((m - 132.5) / 15.9, tf.float32), tf.ones(2000)))
    assert info == pytest.approx(0.0, abs=1e-6)


def test_adversary_lowers_score_mass_correlation():
    X, y, m, w = _toy()
    train, valid = slice(0, 12_000), slice(12_000, None)
    config = load_training_config(overrides=TINY)
    results = {}
    for lam in (0.0, 10.0):
        model = DecorrelatedClassifier(config, "adversarial", lam, ["x1", "x2"])
        model.fit(X[train], y[train], m[train], w[train], (X[valid], y[valid], m[valid], w[valid]))
        results[lam] = _bkg_dcor(model, X[valid], y[valid], m[valid])
    assert results[10.0] < 0.6 * results[0.0]


def test_penalty_sees_the_inference_score_not_a_dropout_sample():
    """With dropout active the adversary would face a scrambled score; the penalty must not."""
    X, y, m, w = _toy(4_000, seed=6)
    config = load_training_config(overrides={**TINY, "classifier": {"layers": [32, 32], "dropout": 0.5},
                                             "schedule": {**TINY["schedule"], "epochs": 1}})
    model = DecorrelatedClassifier(config, "adversarial", 10.0, ["x1", "x2"])
    model.fit(X, y, m, w)
    bkg = y == 0
    first, second = (model.decorrelation_penalty(X[bkg][:1000], m[bkg][:1000], w[bkg][:1000]) for _ in range(2))
    assert first == second
    with pytest.raises(ValueError, match="no decorrelation penalty"):
        DecorrelatedClassifier(config, "classifier").decorrelation_penalty(X, m, w)


def test_epoch_selection_keeps_the_least_sculpted_epoch_for_decorrelating_methods():
    def record(epoch, auc, r50, ratio):
        return EpochRecord(epoch, "adversarial", 0.5, 0.0, auc, r50, ratio * 0.003, 0.003, ratio, 1.0)

    history = [record(0, 0.80, 6.1, 1.9), record(1, 0.74, 5.0, 0.7), record(2, 0.75, 5.2, 0.7), record(3, 0.78, 5.6, 1.2)]
    assert max(history, key=selection_key).epoch == 2  # lowest JSD ratio; R50 breaks the tie
    assert max(history, key=lambda r: selection_key(r, decorrelating=False)).epoch == 0  # best AUC


def test_disco_and_baselines_run_with_the_same_interface():
    X, y, m, w = _toy(8_000, seed=1)
    config = load_training_config(overrides=TINY)
    unconstrained = DecorrelatedClassifier(config, "classifier", 0, ["x1", "x2"])
    unconstrained.fit(X, y, m, w)
    disco = DecorrelatedClassifier(config, "disco", 0, ["x1", "x2"])
    disco.fit(X, y, m, w)
    assert _bkg_dcor(disco, X, y, m) < _bkg_dcor(unconstrained, X, y, m)
    dropped = DecorrelatedClassifier(config, "drop-correlated", 0, ["x1", "x2"])
    dropped.fit(X, y, m, w)
    assert dropped.dropped == ["x2"] and dropped.kept == [0]
    assert correlated_features(X[y == 0], m[y == 0], ["x1", "x2"], 0.1) == ["x2"]


def test_mass_reweighting_gives_background_the_signal_shape():
    _, y, m, w = _toy(20_000, seed=2)
    rw = mass_reweighting(m, y, w)
    sig = metrics.mass_histogram(m[y == 1], w[y == 1])
    bkg = metrics.mass_histogram(m[y == 0], rw[y == 0])
    assert metrics.jsd(sig, bkg) < 0.01
    assert rw[y == 0].sum() == pytest.approx(w[y == 0].sum())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    names = feature_names("seed")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10_000, len(names))).astype(np.float32) * 30 + 50
    y = (X[:, 0] + rng.normal(0, 10, len(X)) > 50).astype(np.int8)
    model = DecorrelatedClassifier(load_training_config(overrides={**TINY, "schedule": {"epochs": 1}}),
                                   "drop-correlated", 0, names)
    model.fit(X, y, rng.uniform(105, 160, len(X)), np.ones(len(X)))
    path = export_onnx(model, tmp_path_factory.mktemp("model") / "m.onnx", "seed", names,
                       {"ttH_adv.training_samples": {"signal": ["ttH"]}})
    return model, path, X


def test_onnx_matches_keras_on_10k_events(exported):
    model, path, X = exported
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    scorer = OnnxScorer(path)
    assert np.max(np.abs(scorer(X) - model.predict(X))) < 1e-5
    assert scorer(X[:1]).shape == (1,)  # dynamic batch
    info = load_model_info(path)
    assert info.features == feature_names("seed") and info.feature_set_version == FEATURE_SET_VERSION["seed"]
    assert info.method == "drop-correlated" and info.lam == 0.0
    assert json.loads(info.metadata["ttH_adv.training_samples"]) == {"signal": ["ttH"]}


def _relabelled(path, tmp_path, **changes):
    import onnx

    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key in changes:
            entry.value = changes[entry.key]
    out = tmp_path / "changed.onnx"
    onnx.save(proto, str(out))
    return out


def test_mismatched_models_are_refused_with_a_clear_message(exported, tmp_path, config):
    _, path, _ = exported
    names = feature_names("seed")
    swapped = names[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    cases = {
        "ttH_adv.features": (json.dumps(swapped), "feature order differs from position 0"),
        "ttH_adv.feature_set_version": ("seed-v0", "feature-set version 'seed-v0'"),
    }
    for key, (value, message) in cases.items():
        bad = _relabelled(path, tmp_path, **{key: value})
        with pytest.raises(ModelMismatchError, match=message):
            check_model(load_model_info(bad))
        with pytest.raises(ModelMismatchError):
            TthProcessor(config, model_path=str(bad))  # refused before any event is read
    renamed = _relabelled(path, tmp_path, **{"ttH_adv.features": json.dumps(names[:-1] + ["jet3_mass"])})
    with pytest.raises(ModelMismatchError, match=r"missing from the model \['jet3_phi'\].*\['jet3_mass'\]"):
        check_model(load_model_info(renamed))


def test_training_data_from_a_dump(small_manifest, config, tmp_path):
    from conftest import run

    run(small_manifest, config, dump_dir=str(tmp_path / "dump"))
    cfg = load_training_config(overrides={"data": {"min_jets": 2}})
    data = load_training_data(tmp_path / "dump", cfg.data)
    assert set(np.unique(data.y)) == {0, 1}
    assert data.weight[data.y == 1].sum() == pytest.approx(len(data) / 2)
    assert data.weight[data.y == 0].sum() == pytest.approx(len(data) / 2)
    assert set(data.dataset[data.y == 0]) == {"data"}
    train, test = data.fold(0, 2)
    assert np.all(train.event_number % 2 == 1) and np.all(test.event_number % 2 == 0)
    assert len(train) + len(test) == len(data)
