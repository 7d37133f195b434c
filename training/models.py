"""Keras (functional API) classifier and Gaussian-mixture adversary, and their losses."""

from __future__ import annotations

import logging
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from .config import AdversaryConfig, ClassifierConfig  # noqa: E402


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's 'triggered tf.function retracing' notice: every fold and method builds its own step
    functions (``DecorrelatedClassifier._build_steps``), traced once per phase, which is what it counts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_ExpectedRetracing())


def build_classifier(n_features: int, config: ClassifierConfig, seed: int, outputs: int = 1) -> keras.Model:
    """MLP with ReLU and dropout; outputs the logit (the score is its sigmoid), or one logit per class for a
    multi-class network (its softmax)."""
    init = keras.initializers.GlorotUniform(seed=seed)
    inputs = keras.Input((n_features,), name="features")
    x = inputs
    for i, width in enumerate(config.layers):
        x = keras.layers.Dense(width, activation="relu", kernel_initializer=init, name=f"dense_{i}")(x)
        if config.dropout > 0:
            x = keras.layers.Dropout(config.dropout, seed=seed + i, name=f"dropout_{i}")(x)
    logit = keras.layers.Dense(outputs, kernel_initializer=init, name="logit")(x)
    return keras.Model(inputs, logit, name="classifier")


def build_adversary(config: AdversaryConfig, seed: int) -> keras.Model:
    """Mixture density network: (logit or score) -> K means, log-widths and mixture logits of the
    standardised protected variable (m_yy)."""
    init = keras.initializers.GlorotUniform(seed=seed + 100)
    inputs = keras.Input((1,), name="classifier_output")
    x = inputs
    for i, width in enumerate(config.layers):
        x = keras.layers.Dense(width, activation="tanh", kernel_initializer=init, name=f"adv_dense_{i}")(x)
    k = config.components
    means = keras.layers.Dense(k, kernel_initializer=init, name="means")(x)
    log_sigmas = keras.layers.Dense(k, kernel_initializer=init, name="log_sigmas")(x)
    mix_logits = keras.layers.Dense(k, kernel_initializer=init, name="mix_logits")(x)
    return keras.Model(inputs, [means, log_sigmas, mix_logits], name="adversary")


def mixture_nll(params: list[tf.Tensor], target: tf.Tensor) -> tf.Tensor:
    """Per-event negative log-likelihood of target under the Gaussian mixture."""
    means, log_sigmas, mix_logits = params
    log_sigmas = tf.clip_by_value(log_sigmas, -5.0, 3.0)
    z = (target[:, None] - means) / tf.exp(log_sigmas)
    log_norm = -0.5 * z**2 - log_sigmas - 0.5 * math.log(2 * math.pi)
    log_mix = tf.nn.log_softmax(mix_logits, axis=-1)
    return -tf.reduce_logsumexp(log_mix + log_norm, axis=-1)


def mixture_information(params: list[tf.Tensor], target: tf.Tensor, weights: tf.Tensor,
                        conditions: int | None = None) -> tf.Tensor:
    """The adversary's estimate of I(m; score) in nats on one batch: <log q(m|s) - log q_bar(m)>.

    q_bar(m) = sum_j w_j q(m | s_j) / sum_j w_j is the marginal the adversary itself implies, so
    a mixture that cannot fit the marginal m_yy shape exactly still measures zero information
    for a score independent of m_yy (a histogram-based H(m) would hide sculpting below its gap).
    The marginal is a sum over the batch's events j; with ``conditions`` it runs over the first
    that many only (the batch is a random draw, so they are a random subsample): the pairwise
    term, events x conditions x components, is most of an adversarial epoch's cost.
    """
    means, log_sigmas, mix_logits = params
    log_sigmas = tf.clip_by_value(log_sigmas, -5.0, 3.0)
    log_mix = tf.nn.log_softmax(mix_logits, axis=-1)
    const = 0.5 * math.log(2 * math.pi)
    own = -mixture_nll(params, target)  # log q(m_i | s_i)
    j = slice(None) if conditions is None else slice(0, conditions)
    # [event i, condition j, component k]: the density of m_i under the mixture of event j's score
    z = (target[:, None, None] - means[None, j]) / tf.exp(log_sigmas)[None, j]
    log_pair = tf.reduce_logsumexp(log_mix[None, j] - 0.5 * z**2 - log_sigmas[None, j] - const, -1)
    positive = tf.maximum(weights[j], 0.0)  # negative-weight MC events cannot weight a density
    log_w = tf.math.log(positive / tf.reduce_sum(positive))
    log_marginal = tf.reduce_logsumexp(log_pair + log_w[None, :], axis=1)
    return weighted_mean(own - log_marginal, weights)


def weighted_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """sum(w x) / sum(w), safe for an all-zero weight batch."""
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted BCE from logits."""
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    return weighted_mean(losses, weights)


def softmax_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted categorical cross-entropy from per-class logits [N, classes]; labels are class indices."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=logits)
    return weighted_mean(losses, weights)


def distance_correlation_squared(x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted distance correlation squared of two 1-d tensors (DisCo, Kasieczka & Shih 2020)."""
    w = weights / tf.reduce_sum(weights)
    a = tf.abs(x[:, None] - x[None, :])
    b = tf.abs(y[:, None] - y[None, :])

    def centred(d: tf.Tensor) -> tf.Tensor:
        row = tf.linalg.matvec(d, w)
        return d - row[:, None] - row[None, :] + tf.reduce_sum(row * w)

    a, b = centred(a), centred(b)

    def wmean(m: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(w[:, None] * m * w[None, :])

    return tf.math.divide_no_nan(wmean(a * b), tf.sqrt(wmean(a * a) * wmean(b * b)))


def legendre_polynomials(x: tf.Tensor, order: int) -> tf.Tensor:
    """P_0 .. P_order at x in [-1, 1], as columns [len(x), order + 1] (order <= 2)."""
    if not 0 <= order <= 2:
        raise ValueError(f"MoDe order must be 0, 1 or 2, got {order}")
    polynomials = [tf.ones_like(x), x, 0.5 * (3.0 * x**2 - 1.0)]
    return tf.stack(polynomials[: order + 1], axis=-1)


def moment_decomposition_loss(scores: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor, order: int,
                              mass_bins: int, score_bins: int) -> tf.Tensor:
    """MoDe (Kitouni, Nachman, Weisser & Williams, arXiv:2010.09745) on one background batch.

    With F_m(s) the background's conditional CDF of the score at protected value m, and m
    mapped to [-1, 1], the loss is the squared distance of F_m(s) from its Legendre expansion up
    to ``order``:

        a_l(s) = (2l + 1) / 2  int_{-1}^{1} F_m(s) P_l(m) dm,      F^_m(s) = sum_{l <= order} a_l(s) P_l(m),
        L_MoDe = int_0^1 ds  (1/2) int_{-1}^{1} dm  [F_m(s) - F^_m(s)]^2.

    Order 0 asks F_m(s) = its mean over m: a background efficiency flat in m at every cut;
    order 1 lets it vary linearly in m.  Discretised as in the paper's implementation: m in
    ``mass_bins`` equal-occupancy bins of the batch (integrated with their widths).  One change:
    s runs over ``score_bins`` quantiles of the batch's scores rather than a fixed grid in [0, 1]
    (the integral is over the background efficiency), because on a fixed grid a network that
    squeezes every score into one bin makes every CDF flat for free.  Each step in the CDF is a
    sigmoid as wide as the gap to the neighbouring quantiles, so the gradient reaches every
    score; the weights weight each bin's CDF (negative ones count as 0).
    """
    per_bin = tf.shape(scores)[0] // mass_bins
    rows = tf.argsort(protected)[: per_bin * mass_bins]
    m = tf.reshape(tf.gather(protected, rows), (mass_bins, per_bin))
    s = tf.reshape(tf.gather(scores, rows), (mass_bins, per_bin))
    w = tf.reshape(tf.maximum(tf.gather(weights, rows), 0.0), (mass_bins, per_bin))
    low, high = m[0, 0], m[-1, -1]
    x = 2.0 * tf.math.divide_no_nan(m - low, high - low) - 1.0        # m in [-1, 1]
    inner = 0.5 * (x[:-1, -1] + x[1:, 0])                              # boundaries between the bins
    edges = tf.concat([[-1.0], inner, [1.0]], axis=0)
    width = edges[1:] - edges[:-1]                                     # dm per bin (they add up to 2)
    centre = tf.reduce_sum(x * w, axis=1) / tf.maximum(tf.reduce_sum(w, axis=1), 1e-12)
    # thresholds at the batch's score quantiles (fixed for the gradient), each step as wide as the
    # gap to its neighbours: a fixed grid in s would be flattened by squeezing every score into one bin
    pooled = tf.sort(tf.reshape(s, [-1]))
    positions = tf.cast((tf.range(score_bins + 2, dtype=scores.dtype) + 0.5) / (score_bins + 2)
                        * tf.cast(tf.size(pooled), scores.dtype), tf.int32)
    nodes = tf.stop_gradient(tf.gather(pooled, positions))
    thresholds = nodes[1:-1]
    widths = tf.maximum(0.5 * (nodes[2:] - nodes[:-2]), 1e-6)
    below = tf.sigmoid((thresholds[None, None, :] - s[:, :, None]) / widths[None, None, :])   # [bin, event, s]
    cdf = tf.reduce_sum(w[:, :, None] * below, axis=1) / tf.maximum(tf.reduce_sum(w, axis=1), 1e-12)[:, None]
    P = legendre_polynomials(centre, order)                            # [bin, l]
    norm = (2.0 * tf.range(order + 1, dtype=scores.dtype) + 1.0) / 2.0
    coefficients = norm[:, None] * tf.einsum("bs,bl,b->ls", cdf, P, width)
    fitted = tf.matmul(P, coefficients)                                # [bin, s]
    return tf.reduce_sum(0.5 * width[:, None] * (cdf - fitted) ** 2) / score_bins
